"""One customer with an approved report in a temporary store, delivered through a chosen mix of
channels against the simulators (Graph, Gmail and Drive over the simulators' TLS listener)."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.factories import ROOT, WEEK_OF

MSP_SENDER = "reports@northwind-msp.example"


def pdf_of_size(min_bytes: int = 0, label: str = "report") -> bytes:
    """A real PDF (one page) of at least ``min_bytes``, padded with an embedded file."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.add_metadata({"/Title": f"Weekly report ({label})"})
    writer.add_attachment("padding.bin", os.urandom(max(min_bytes, 4096)))  # random: every PDF differs
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


@dataclass
class Case:
    settings: object
    item: dict
    customer: object
    pdf: bytes
    snapshot: bytes
    home: Path

    def deliver(self, channel: str, **kwargs):
        from msp_reports import pipeline

        return pipeline.deliver(self.settings, self.item, channel, **kwargs)

    def receipt(self, channel: str) -> dict | None:
        from msp_reports.delivery.ledger import Ledger
        from msp_reports.store import ReportStore

        return Ledger(ReportStore(self.settings.store_root), self.customer.code, WEEK_OF).receipt(channel)


@pytest.fixture
def delivery_conns(sim, use_connection):
    """The Graph, Gmail and Drive connections (TLS, with the simulators' CA bundle); the reports
    app is installed, with its RSC permissions, in the test team :data:`TEAM`."""
    from devtools.simulators import drive, gmail, graph

    graph.install_app(sim.state, TEAM)
    conns = {}
    for module in (graph, gmail, drive):
        conns.update(module.demo_connections(sim.base_url, sim.creds, {}))
    for conn_id, conn in conns.items():
        use_connection(conn_id, conn)
    return conns


@pytest.fixture
def make_case(tmp_path, delivery_conns):
    """``make_case(delivery={...}, pdf_bytes=N)``: ACME's registry entry with that delivery block."""
    from msp_reports import messages
    from msp_reports.approval import ARTEFACTS, record_decision
    from msp_reports.week import ReportWeek
    from msp_reports.reconcile import reconcile
    from msp_reports.registry import load_registry
    from msp_reports.settings import Settings
    from msp_reports.store import ReportStore, sha256

    from tests.factories import snapshot

    def _make(delivery: dict, *, pdf_bytes: int = 0, code: str = "ACME", msp_extra: dict | None = None) -> Case:
        raw = yaml.safe_load((ROOT / "include" / "customers.yaml").read_text())
        entry = next(c for c in raw["customers"] if c["code"] == code)
        entry["delivery"] = delivery
        registry_path = tmp_path / "customers.yaml"
        registry_path.write_text(yaml.safe_dump({"msp": {**raw["msp"], **(msp_extra or {})}, "customers": [entry]}))
        registry = load_registry(registry_path)
        customer = registry.get(code)
        settings = Settings(registry_path=str(registry_path), store_root=str(tmp_path / "store"),
                            archive_root=str(tmp_path / "archive"))
        store = ReportStore(settings.store_root)
        snap = snapshot(WEEK_OF, customer=code)
        rec = reconcile(snap, None, customer.thresholds)
        snapshot_bytes = json.dumps(snap.model_dump(mode="json"), sort_keys=True).encode()
        store.write_bytes(code, WEEK_OF, "snapshot.json", snapshot_bytes)
        store.write_json(code, WEEK_OF, "reconciled.json", rec.model_dump(mode="json"))
        pdf = pdf_of_size(pdf_bytes)
        store.write_bytes(code, WEEK_OF, "report.pdf", pdf)
        sent_with = messages.build(rec, customer, registry.msp, ReportWeek.starting(WEEK_OF, customer.timezone))
        for name, data in sent_with.items():  # what pipeline.render publishes beside the PDF
            store.write_bytes(code, WEEK_OF, name, data)
        hashes = {key: sha256(sent_with[name]) for key, name in ARTEFACTS.items() if name in sent_with}
        store.write_json(code, WEEK_OF, "render.json", {
            "pdf_sha256": sha256(pdf), "snapshot_sha256": sha256(snapshot_bytes), "commentary_sha256": sha256(b""),
            **hashes})
        record_decision(store, code, WEEK_OF, "approve", by="test", via="test",
                        now=dt.datetime(2026, 11, 23, 9, 30, tzinfo=dt.timezone.utc))
        return Case(settings, {"customer": code, "week_of": WEEK_OF.isoformat()}, customer, pdf,
                    store.read_bytes(code, WEEK_OF, "snapshot.json"), tmp_path)

    return _make


def graph_world(sim):
    from devtools.simulators.graph import graph_world as gw

    return gw(sim.state)


SP_DRIVE = "b!TestLibraryDriveId0123456789abcdefABCDEF"
TEAM = "0f5d3b7e-1111-4a2b-9c3d-5e6f7a8b9c0d"
CHANNEL = "19:testchannel0123456789abcdef@thread.tacv2"
