"""Issue 17 item 1: one identity rule for the registry's uniqueness check and every source's matching.

A source hands a customer the records whose name matches its registry ``ref``; the registry
refuses two customers with one identity. If the source matched more loosely than the registry
compared, a customer the registry accepted would get another customer's records. These tests
show the records a careless spelling would get (the simulators over HTTP), that the registry
refuses that spelling, and that for every pair of spellings "the registry refuses the pair"
and "the source hands one the other's records" are the same answer.
"""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import pytest
import yaml

from msp_reports.exceptions import RegistryError
from msp_reports.registry import parse_registry
from devtools.simulators.server import SimServer, demo_connections
from devtools.simulators.world import PROFILES, Profile, World
from msp_reports.http.client import RetryPolicy
from msp_reports.sources import datto, uptimerobot, veeam
from tests.factories import report_week

DEMO = Path(__file__).resolve().parents[1] / "include" / "customers.yaml"
WEEK_OF = dt.date(2026, 11, 16)
POLICY = RetryPolicy(attempts=2, base_delay=0.01, sleep=lambda _s: None)


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load(DEMO.read_text())


def _customer(raw: dict, code: str) -> dict:
    return next(c for c in raw["customers"] if c["code"] == code)


def _connect(use_connection, server: SimServer, creds, conn_id: str) -> None:
    conns = demo_connections(server.base_url, creds, {})
    use_connection(conn_id, conns[conn_id])
    if conn_id == "veeam_default":
        use_connection("veeam_vbr_default", conns["veeam_vbr_default"])


# ---- what a careless spelling would be handed, and the registry refusing it -------------------
def test_a_datto_company_with_two_spaces_is_acmes_company_and_is_refused(sim, creds, use_connection, world, raw):
    _connect(use_connection, sim, creds, "datto_default")
    week = report_week(world, "ACME")
    acme = datto.extract(datto.DattoHook(policy=POLICY), {"client_company": "Acme Manufacturing Ltd"}, week)
    spaced = datto.extract(datto.DattoHook(policy=POLICY), {"client_company": "Acme  Manufacturing Ltd"}, week)
    assert len(acme.data.assets) == 4 and spaced.data == acme.data  # Datto hands it ACME's four assets

    _customer(raw, "FXTR")["sources"]["backups"]["ref"]["client_company"] = "Acme  Manufacturing Ltd"
    with pytest.raises(RegistryError) as err:
        parse_registry(raw, "customers.yaml")
    assert ("customers.yaml: customer 'FXTR': sources.backups.ref (datto client_company) "
            "'datto_default: client_company=acme manufacturing ltd' is already used by customer 'ACME'") in str(err.value)


def test_a_veeam_company_spelled_another_way_is_refused(raw):
    _customer(raw, "ECHO")["sources"]["backups"]["ref"]["organization"] = "condor   LOGISTICS Pte Ltd"
    with pytest.raises(RegistryError, match=r"customer 'ECHO': sources.backups.ref \(veeam organization\) "
                                            r"'veeam_default: organization=condor logistics pte ltd' is already used "
                                            r"by customer 'CNDR'"):
        parse_registry(raw, "customers.yaml")


def test_a_monitor_prefix_without_its_colon_is_the_same_customer_and_is_refused(raw):
    _customer(raw, "INDG")["sources"]["sites"]["ref"]["monitor_prefix"] = "HTEL"  # HTEL has "HTEL:"
    with pytest.raises(RegistryError, match=r"customer 'INDG': sources.sites.ref \(uptimerobot monitor_prefix\) "
                                            r"'uptimerobot_default: monitor_prefix=htel' is already used by customer 'HTEL'"):
        parse_registry(raw, "customers.yaml")


def test_a_monitor_prefix_with_a_colon_inside_is_refused(raw):
    _customer(raw, "INDG")["sources"]["sites"]["ref"]["monitor_prefix"] = "INDG: www"
    with pytest.raises(RegistryError, match=r"customer 'INDG': sources.sites.ref.monitor_prefix: must be the label "
                                            r"before the first ':' of the monitor names"):
        parse_registry(raw, "customers.yaml")


# ---- UptimeRobot: a label is matched whole ----------------------------------------------------
GOLF = next(p for p in PROFILES if p.code == "GOLF")
NEIGHBOURS = (Profile("GOLF-EU", "Golf Course Holdings Europe", "Europe/Madrid", ("Madrid",)),
              Profile("GOLF EAST", "Golf East Ltd", "Asia/Tokyo", ("Osaka",)),
              Profile("GOLFX", "Golfx Pty", "Australia/Perth", ("Perth",)))


@pytest.fixture(scope="module")
def golf_sim(creds):
    """GOLF and three customers whose labels start with GOLF: ``GOLF-EU: www``, ``GOLF EAST: www``, ..."""
    with SimServer(World(WEEK_OF, profiles=(GOLF, *NEIGHBOURS)), creds) as server:
        yield server


@pytest.mark.parametrize("prefix", ["GOLF", "GOLF:", "golf :"])
def test_a_prefix_takes_only_the_monitors_labelled_exactly_with_it(golf_sim, creds, use_connection, prefix):
    _connect(use_connection, golf_sim, creds, "uptimerobot_default")
    world = golf_sim.world
    got = uptimerobot.extract(uptimerobot.UptimeRobotHook(policy=POLICY), {"monitor_prefix": prefix},
                              report_week(world, "GOLF")).data
    assert sorted(c.address for c in got.checks) == sorted(c.address for c in world.customers["GOLF"].checks)
    assert sorted(c.name for c in got.checks) == sorted(c.name for c in world.customers["GOLF"].checks)


# ---- one rule: the registry refuses a pair exactly when a source would mix them ---------------
NAME_PAIRS = [
    ("Acme Manufacturing Ltd", "Acme  Manufacturing Ltd"),
    ("Acme Manufacturing Ltd", " acme manufacturing LTD "),
    ("Acme Manufacturing Ltd", "Acme\u00a0Manufacturing\tLtd"),
    ("Acme Manufacturing Ltd", "\uff21cme Manufacturing Ltd"),  # a full-width A
    ("Strasse Bau GmbH", "STRASSE BAU GMBH"),
    ("Stra\u00dfe Bau GmbH", "STRASSE BAU GMBH"),
    ("Acme Manufacturing Ltd", "Acme Manufacturing"),
    ("Acme Manufacturing Ltd", "Acme Manufacturing Ltd."),
]
PREFIX_PAIRS = [
    ("GOLF:", "GOLF"), ("GOLF:", "golf :"), ("GOLF", "GOLF-EU"), ("GOLF", "GOLFX"), ("GOLF:", "GOLF EU"),
    ("GOLF", "GOLF\uff1a"), ("GOLF-EU", "GOLF_EU"),
]


def _refused(raw: dict, where: tuple[str, str, str], a: str, b: str) -> bool:
    first, second, domain_key = where
    raw = copy.deepcopy(raw)
    domain, key = domain_key.split(".")
    _customer(raw, first)["sources"][domain]["ref"][key] = a
    _customer(raw, second)["sources"][domain]["ref"][key] = b
    parse_registry(copy.deepcopy({**raw, "customers": [c for c in raw["customers"] if c["code"] != second]}))
    try:
        parse_registry(raw)
    except RegistryError as exc:
        assert f"customer '{second}': sources.{domain}.ref" in str(exc) and f"customer '{first}'" in str(exc)
        return True
    return False


@pytest.mark.parametrize(("a", "b"), NAME_PAIRS)
def test_datto_hands_over_a_company_exactly_when_the_registry_refuses_the_pair(raw, a, b):
    mixed = datto.same_company({"clientCompanyName": b}, a)
    assert _refused(raw, ("ACME", "FXTR", "backups.client_company"), a, b) == mixed


@pytest.mark.parametrize(("a", "b"), NAME_PAIRS)
def test_veeam_hands_over_a_company_exactly_when_the_registry_refuses_the_pair(raw, a, b):
    mixed = veeam.names_company({"name": b}, a)
    assert _refused(raw, ("CNDR", "ECHO", "backups.organization"), a, b) == mixed


@pytest.mark.parametrize(("a", "b"), PREFIX_PAIRS)
def test_uptimerobot_hands_over_monitors_exactly_when_the_registry_refuses_the_pair(raw, a, b):
    """Customer B names its monitors ``<B's label>: www``; A's prefix takes them only if it is B's label."""
    b_monitor = f"{b.strip().removesuffix(':').removesuffix(chr(0xff1a))}: www.b.example"
    mixed = uptimerobot.belongs_to(b_monitor, a)
    assert _refused(raw, ("GOLF", "HTEL", "sites.monitor_prefix"), a, b) == mixed
