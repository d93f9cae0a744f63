"""Every source system x every way a source fails: the customer's report still renders (a real
PDF), the section is marked unavailable and flagged ``source_unavailable``, retries are bounded
(counted on the simulator's side), and no number is invented.

Faults, injected with ``POST /_sim/faults/<system>``:

- ``timeout``: every answer is 2 s late and the connection's extra ``timeout`` is 0.4 s;
- ``5xx``: every answer is 503;
- ``429``: a storm of 429s with ``Retry-After: 3``, each one honoured (the waits are recorded);
- ``malformed``: a 200 whose body is not JSON;
- ``empty``: the API answers normally, but the customer has no records at all;
- ``truncated``: paging breaks: a page after the first comes back empty while the envelope
  still counts it (Datto, Cloudflare, HaloPSA, UptimeRobot, VSPC/VBR, ConnectWise), the next
  link is refused (Defender, Sentinel), a list is shorter than its ``count`` (LibreNMS), or the
  daily slices stop before the end of the week (Zabbix).

The rule for ``empty`` (see docs/evidence.md): a list of *things the customer has* (services,
devices, appliances, jobs, health checks, monitors) that comes back empty is a configuration or
source fault, shown as unavailable; a list of *events in the week* (tickets, incidents) that
comes back empty from a successful, filtered query is a real zero, because the system answered
that exact question (ConnectWise's ``/count``, HaloPSA's ``record_count``, an OData collection).
"""

from __future__ import annotations

import re

import pytest

from tests.factories import WEEK_OF

from msp_reports import pipeline
from msp_reports.exceptions import SourceError, SourceRateLimited, SourceResponseError, SourceUnavailable
from msp_reports.sources import SYSTEMS
from msp_reports.store import ReportStore

from .conftest import (
    ATTEMPTS, REGISTRY, clear_faults, copy_tree, demo_connections_for, fault, pdf_text, received,
)

FAULTS = ("timeout", "5xx", "429", "malformed", "empty", "truncated")
RETRY_AFTER = 3
SLOW_DELAY, SHORT_TIMEOUT = 2.0, 0.4
# Event lists: an empty, successful answer is the system saying "none this week".
EMPTY_IS_A_REAL_ZERO = frozenset({"connectwise", "halopsa", "defender", "sentinel"})


# A customer whose week has records enough to page (HTEL, the first Sentinel customer, has no
# incidents in the latest week, so nothing would page and "truncated" would test nothing).
PREFERRED = {"sentinel": "JULT"}


def _case(system: str) -> tuple[str, str]:
    """A customer whose domain this system serves alone (so the whole section depends on it)."""
    for c in REGISTRY.customers:
        for domain, sources in c.sources.items():
            if [s.system for s in sources] == [system] and PREFERRED.get(system, c.code) == c.code:
                return c.code, domain
    raise LookupError(system)


CASES = {system: _case(system) for system in sorted(SYSTEMS)}


@pytest.fixture(scope="module")
def baseline(sim, tmp_path_factory):
    """Each case customer's five sections extracted once without faults; and the number of
    requests a clean extract of the faulted domain costs (with the tests' page size of 2)."""
    from msp_reports.settings import Settings
    from devtools.simulators.server import connection_env

    root = tmp_path_factory.mktemp("baseline")
    settings = Settings(registry_path=Settings.load().registry_path, store_root=str(root / "store"),
                        archive_root=str(root / "archive"))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in connection_env(demo_connections_for(sim)).items():
            mp.setenv(key, value)
        for code in sorted({code for code, _ in CASES.values()}):
            item = {"customer": code, "week_of": WEEK_OF.isoformat()}
            for domain in pipeline.DOMAINS:
                pipeline.extract(settings, item, domain)
    return root / "store"


def _section_md(markdown: str, domain: str) -> str:
    from msp_reports.render import DOMAIN_LABELS

    title = DOMAIN_LABELS[domain]
    match = re.search(rf"^## {re.escape(title)}\b.*?(?=^## |\Z)", markdown, re.MULTILINE | re.DOTALL)
    assert match, f"no '## {title}' section in the report"
    return match.group(0)


def _connections(sim, system: str, mode: str) -> dict[str, dict]:
    conns = demo_connections_for(sim)
    if mode == "timeout":  # every connection of this system gets a short timeout
        for conn in conns.values():
            if f"/{system}" in str(conn.get("host", "")):
                extra = conn.get("extra") or {}
                conn["extra"] = {**(extra if isinstance(extra, dict) else {}), "timeout": SHORT_TIMEOUT}
    return conns


def _inject(sim, system: str, mode: str) -> None:
    if mode == "timeout":
        fault(sim, system, "slow", delay=SLOW_DELAY, times=1000)
    elif mode == "5xx":
        fault(sim, system, "503", times=1000)
    elif mode == "429":
        fault(sim, system, "429", retry_after=RETRY_AFTER, times=1000)
    else:
        fault(sim, system, mode, times=1000)


@pytest.mark.parametrize("mode", FAULTS)
@pytest.mark.parametrize("system", sorted(CASES))
def test_fault(sim, world, baseline, settings, set_connections, sleeps, tmp_path, system, mode):
    code, domain = CASES[system]
    item = {"customer": code, "week_of": WEEK_OF.isoformat()}
    copy_tree(baseline / code, tmp_path / "store" / code)  # last good parts: a failure must replace them
    set_connections(_connections(sim, system, mode))

    before = received(sim, system)
    _inject(sim, system, mode)
    error: Exception | None = None
    try:
        pipeline.extract(settings, item, domain)
    except Exception as exc:  # noqa: BLE001 - asserted below
        error = exc
    finally:
        clear_faults(sim)
    requests_received = received(sim, system) - before
    print(f"MATRIX {system} {mode}: requests={requests_received} "
          f"error={type(error).__name__ if error else None} waits={list(sleeps)}")

    summary = pipeline.build_snapshot(settings, item)
    pipeline.render(settings, item)
    store = ReportStore(settings.store_root)
    text = pdf_text(store.read_bytes(code, WEEK_OF, "report.pdf"))
    markdown = store.read_text(code, WEEK_OF, "report.md")
    flags = store.read_json(code, WEEK_OF, "reconciled.json")["flags"]
    unavailable_flags = [f for f in flags if f["kind"] == "source_unavailable"]

    # retries are bounded: one failing request costs at most ATTEMPTS tries
    if mode in ("timeout", "5xx", "429"):
        assert requests_received == ATTEMPTS, requests_received
    else:
        assert 1 <= requests_received <= 200
    if mode == "429":  # each Retry-After was honoured, none exceeded
        assert list(sleeps) == [RETRY_AFTER] * (ATTEMPTS - 1)

    if mode == "empty" and system in EMPTY_IS_A_REAL_ZERO:
        assert error is None
        assert summary["unavailable"] == [] and not unavailable_flags
        data = store.read_json(code, WEEK_OF, f"sections/{domain}.{system}.json")["data"]
        lists = [v for v in data.values() if isinstance(v, list)]
        assert lists and all(v == [] for v in lists)
        assert "Data unavailable:" not in text
        return

    expected = {"timeout": SourceUnavailable, "5xx": SourceUnavailable, "429": SourceRateLimited}.get(
        mode, SourceError)
    assert isinstance(error, expected), repr(error)
    if mode in ("malformed", "truncated"):
        assert isinstance(error, SourceResponseError), repr(error)
    assert summary["unavailable"] == [domain]
    assert [(f["domain"], f["subject"]) for f in unavailable_flags] == [(domain, system)], flags
    assert not [f for f in flags if f["domain"] == domain and f["kind"] != "source_unavailable"], flags
    part = store.read_json(code, WEEK_OF, f"sections/{domain}.{system}.json")
    assert part["status"]["ok"] is False and part["data"] is None  # the last good data was replaced

    label = SYSTEMS[system].label
    assert f"Data unavailable: {label}" in " ".join(text.split())
    section = _section_md(markdown, domain)
    notice = section.split("Data unavailable", 1)[1]
    assert not re.search(r"\d", notice), notice  # no figure at all, let alone a zero
    assert "|" not in section  # no table of rows
    assert sim.base_url.split("//")[1] not in text and "HTTP " not in text  # technical detail stays internal


# The endpoints that carry recovery (RTO) evidence, each faulted alone (the requests before it
# succeed): the whole backup section is unavailable, never an RTO shown as met or a zero.
RECOVERY_ENDPOINTS = (("datto", "/asset/agent"), ("veeam", "/api/v1/sessions"), ("veeam", "/taskSessions"))
ENDPOINT_FAULTS = ("5xx", "429", "malformed", "truncated")


@pytest.mark.parametrize("mode", ENDPOINT_FAULTS)
@pytest.mark.parametrize("system, path", RECOVERY_ENDPOINTS)
def test_recovery_endpoint_fault(sim, world, baseline, settings, set_connections, sleeps, tmp_path, monkeypatch,
                                 system, path, mode):
    import functools

    from msp_reports.sources import veeam

    code, domain = CASES[system]
    # VBR sessions in pages of 2 would take more than the paging guard's 1000 pages before the
    # faulted endpoint is reached (a DAG run lists them once, shared); the faulted one still pages
    monkeypatch.setattr(veeam, "HOOK", functools.partial(veeam.HOOK, session_page_size=500))
    item = {"customer": code, "week_of": WEEK_OF.isoformat()}
    copy_tree(baseline / code, tmp_path / "store" / code)
    set_connections(_connections(sim, system, mode))
    params = {"5xx": {"mode": "503"}, "429": {"mode": "429", "retry_after": RETRY_AFTER}}.get(mode, {"mode": mode})
    fault(sim, system, params.pop("mode"), path=path, times=1000, **params)
    error: Exception | None = None
    try:
        pipeline.extract(settings, item, domain)
    except Exception as exc:  # noqa: BLE001 - asserted below
        error = exc
    finally:
        clear_faults(sim)

    expected = {"5xx": SourceUnavailable, "429": SourceRateLimited}.get(mode, SourceResponseError)
    assert isinstance(error, expected), repr(error)
    assert "more pages after" not in str(error)  # the fault, not the paging guard, failed it
    if mode == "429":
        assert list(sleeps) == [RETRY_AFTER] * (ATTEMPTS - 1)
    summary = pipeline.build_snapshot(settings, item)
    pipeline.render(settings, item)
    store = ReportStore(settings.store_root)
    markdown = store.read_text(code, WEEK_OF, "report.md")
    assert summary["unavailable"] == [domain]
    section = _section_md(markdown, domain)
    assert "Data unavailable" in section and "|" not in section and "RTO met" not in section
    flags = store.read_json(code, WEEK_OF, "reconciled.json")["flags"]
    assert not [f for f in flags if f["domain"] == domain and f["kind"] != "source_unavailable"], flags
