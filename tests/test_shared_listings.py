"""Listings an API cannot filter by customer are fetched once per run and give the same data."""

from __future__ import annotations

import datetime as dt

import pytest
import requests

from tests.factories import WEEK_OF

from msp_reports import pipeline
from msp_reports.shared import SharedListings
from msp_reports.store import ReportStore


def test_listing_is_fetched_once_per_run_and_split_by_key(tmp_path):
    store = ReportStore(str(tmp_path))
    rows = [{"company": "Acme", "n": 1}, {"company": "Bravo", "n": 2}, {"company": "Acme", "n": 3}]
    calls = []

    def fetch():
        calls.append(1)
        return rows

    first = SharedListings(store, WEEK_OF, "scheduled__2026-11-23T06:00:00+00:00")
    assert first.select("devices", fetch, lambda r: r["company"], ["Acme"]) == [rows[0], rows[2]]
    again = SharedListings(store, WEEK_OF, "scheduled__2026-11-23T06:00:00+00:00")
    assert again.select("devices", fetch, lambda r: r["company"], ["Bravo"]) == [rows[1]]
    assert again.select("devices", fetch, lambda r: r["company"], ["Nobody"]) == []
    assert len(calls) == 1
    other_run = SharedListings(store, WEEK_OF, "manual__2026-11-23T10:00:00+00:00")
    assert other_run.select("devices", fetch, lambda r: r["company"], ["Bravo"]) == [rows[1]]
    assert len(calls) == 2  # a new run never reads another run's listing


def test_interrupted_fetch_leaves_no_listing(tmp_path):
    store = ReportStore(str(tmp_path))
    shared = SharedListings(store, WEEK_OF, "run1")

    def broken():
        raise ConnectionError("reset by peer")

    with pytest.raises(ConnectionError):
        shared.select("devices", broken, lambda r: r["company"], ["Acme"])
    assert shared.select("devices", lambda: [{"company": "Acme"}], lambda r: r["company"], ["Acme"]) == [{"company": "Acme"}]


@pytest.fixture
def settings(sim_settings):
    return sim_settings


def _count(sim, system: str) -> int:
    return requests.get(f"{sim.base_url}/_sim/requests", timeout=5).json().get(system, 0)


@pytest.mark.parametrize("system", ["datto", "veeam"])
def test_customers_of_one_run_share_the_estate_listing(sim, settings, system):
    """After the first customer, a customer costs only its own requests; the data is unchanged."""
    run_after = dt.datetime.combine(WEEK_OF + dt.timedelta(days=7), dt.time(7), dt.timezone.utc)
    items = [i for i in pipeline.plan(settings, run_after, None, run_id="run-shared")
             if i["entry"]["sources"]["backups"][0]["system"] == system]
    assert len(items) >= 3
    store = ReportStore(settings.store_root)
    costs, shared_data = [], {}
    for item in items:
        before = _count(sim, system)
        pipeline.extract(settings, item, "backups")
        costs.append(_count(sim, system) - before)
        shared_data[item["customer"]] = store.read_json(item["customer"], WEEK_OF, f"sections/backups.{system}.json")["data"]
    alone = []
    for item in items:  # the same customers without a run: each lists the whole estate itself
        lone = {"customer": item["customer"], "week_of": item["week_of"]}
        before = _count(sim, system)
        pipeline.extract(settings, lone, "backups")
        alone.append(_count(sim, system) - before)
        assert store.read_json(item["customer"], WEEK_OF, f"sections/backups.{system}.json")["data"] == shared_data[item["customer"]]
    assert costs[0] == alone[0]  # the first customer of the run fetches the listing
    assert all(c < a for c, a in zip(costs[1:], alone[1:])), (costs, alone)  # the others reuse it
