import copy
from pathlib import Path

import pytest
import yaml

from msp_reports.exceptions import RegistryError
from msp_reports.registry import load_registry, parse_registry

DEMO = Path(__file__).resolve().parents[1] / "include" / "customers.yaml"


@pytest.fixture
def raw():
    return yaml.safe_load(DEMO.read_text())


def test_demo_registry_is_valid_and_has_twelve_customers_in_three_plus_timezones():
    reg = load_registry(DEMO)
    assert len(reg.customers) == 12
    assert len({c.timezone for c in reg.customers}) >= 3
    assert reg.get("ACME").recipients == sorted([reg.get("ACME").cto.email, reg.get("ACME").account_owner.email])


def test_missing_source_field_names_file_customer_and_field(raw):
    del raw["customers"][2]["sources"]["uptime"]["ref"]["service_tag"]
    with pytest.raises(RegistryError) as err:
        parse_registry(raw, "include/customers.yaml")
    assert str(err.value) == "include/customers.yaml: customer 'CNDR': sources.uptime.ref.service_tag is missing"


def test_bad_email_and_timezone_are_named(raw):
    raw["customers"][0]["cto"]["email"] = "not-an-email"
    raw["customers"][1]["timezone"] = "Mars/Olympus"
    with pytest.raises(RegistryError) as err:
        parse_registry(raw, "reg.yaml")
    text = str(err.value)
    assert "customer 'ACME': cto.email" in text
    assert "customer 'BRVO': timezone: unknown timezone 'Mars/Olympus'" in text


def test_system_in_wrong_domain_is_refused(raw):
    raw["customers"][0]["sources"]["uptime"]["system"] = "datto"
    with pytest.raises(RegistryError, match="customer 'ACME': sources.uptime.system 'datto' serves backups"):
        parse_registry(raw)


def test_two_customers_sharing_a_channel_or_folder_are_refused(raw):
    raw["customers"][1]["delivery"]["teams"]["conn_id"] = raw["customers"][0]["delivery"]["teams"]["conn_id"]
    raw["customers"][3]["delivery"]["archive"]["folder"] = raw["customers"][2]["delivery"]["archive"]["folder"].upper()
    with pytest.raises(RegistryError) as err:
        parse_registry(raw)
    assert "customer 'BRVO': delivery.teams.conn_id 'teams_acme' is already used by customer 'ACME'" in str(err.value)
    assert "customer 'DLTA': delivery.archive.folder" in str(err.value)


def test_duplicate_code_is_refused(raw):
    dup = copy.deepcopy(raw["customers"][0])
    dup["delivery"]["teams"]["conn_id"] = "teams_other"
    dup["delivery"]["archive"]["folder"] = "other"
    dup["sources"]["security"]["ref"]["tenant_id"] = "other-tenant"
    raw["customers"].append(dup)
    with pytest.raises(RegistryError, match="code 'ACME' is already used"):
        parse_registry(raw)


def test_archive_folder_may_not_escape(raw):
    raw["customers"][0]["delivery"]["archive"]["folder"] = "../other-customer"
    with pytest.raises(RegistryError, match="customer 'ACME': delivery.archive.folder"):
        parse_registry(raw)


def test_select_unknown_customer_in_conf(raw):
    reg = parse_registry(raw)
    assert [c.code for c in reg.select(["BRVO", "ACME"])] == ["ACME", "BRVO"]
    with pytest.raises(RegistryError, match="unknown customer code"):
        reg.select(["NOPE"])


def test_a_customer_channel_may_not_be_the_internal_rollup_channel(raw):
    """The roll-up names every customer: a customer posting there would see all the others."""
    raw["customers"][0]["delivery"]["teams"] = {"via": "workflow", "conn_id": raw["msp"]["internal_teams_conn_id"]}
    with pytest.raises(RegistryError) as err:
        parse_registry(raw)
    assert ("customer 'ACME': delivery.teams.conn_id 'teams_weekly_reports' is already used by "
            "the MSP's internal #weekly-reports channel") in str(err.value)


def test_a_customer_graph_channel_may_not_be_the_internal_graph_channel(raw):
    raw["msp"]["internal_teams"] = {"via": "graph", "team_id": "t-internal", "channel_id": "19:weekly@thread.tacv2"}
    raw["customers"][1]["delivery"]["teams"] = {"via": "graph", "team_id": "t-internal",
                                                "channel_id": "19:weekly@thread.tacv2"}
    with pytest.raises(RegistryError, match="customer 'BRVO': delivery.teams.channel_id .* internal #weekly-reports"):
        parse_registry(raw)


def test_one_folder_spelled_two_ways_is_one_folder(raw):
    folder = raw["customers"][0]["delivery"]["archive"]["folder"]
    raw["customers"][5]["delivery"]["archive"] = {"via": "local", "folder": f"./{folder}/"}
    with pytest.raises(RegistryError, match="(?i)customer 'FXTR': delivery.archive.folder 'acme manufacturing ltd/reports/weekly' is already used by customer 'ACME'"):
        parse_registry(raw)


def test_an_archive_folder_inside_another_customers_is_refused(raw):
    raw["customers"][5]["delivery"]["archive"] = {"via": "local", "folder": "Acme Manufacturing Ltd/Reports/Weekly/FXTR"}
    with pytest.raises(RegistryError, match="customer 'FXTR': delivery.archive.folder .* lies inside customer 'ACME'"):
        parse_registry(raw)
    # the same path in another SharePoint library is another folder
    raw["customers"][5]["delivery"]["archive"] = {"via": "sharepoint", "drive_id": "b!other-library",
                                                  "folder": "Acme Manufacturing Ltd/Reports/Weekly/FXTR"}
    parse_registry(raw)


@pytest.mark.parametrize("key, value, problem", [
    ("rto_hours", "0", "must be a recovery time objective in hours above 0"),
    ("rto_hours.server", "soon", "must be a recovery time objective in hours above 0"),
    ("rto_hours.laptop", "4", "'laptop' is not an asset class (server, workstation)"),
    ("rto_hours.asset.", "4", "'asset.' is not an asset class"),
    ("recovery_days", "0", "must be a whole number of days from 1 to 90"),
    ("recovery_days", "120", "must be a whole number of days from 1 to 90"),
])
def test_rto_targets_are_validated_naming_customer_and_field(raw, key, value, problem):
    raw["customers"][0]["sources"]["backups"]["ref"][key] = value
    with pytest.raises(RegistryError) as err:
        parse_registry(raw, "reg.yaml")
    assert f"reg.yaml: customer 'ACME': sources.backups.ref.{key}: {problem}" in str(err.value)


def test_rto_targets_by_class_and_per_asset_are_accepted(raw):
    raw["customers"][0]["sources"]["backups"]["ref"].update(
        {"rto_hours": 8, "rto_hours.workstation": "24", "rto_hours.asset.ACME-FS01": "2", "recovery_days": 14})
    ref = parse_registry(raw).get("ACME").source("backups", "datto").ref
    assert ref["rto_hours.asset.ACME-FS01"] == "2" and ref["recovery_days"] == "14"
