"""Issue 17 item 11: every careless registry value is a load-time error naming file, customer and field.

Each case writes the demo registry with one value changed to a file and loads it as the
``plan_customers`` task does (:func:`load_registry`): the error is a :class:`RegistryError`
whose text names the file and the field (and the customer, for a customer's field), never a
bare ``OverflowError``, a traceback at run time, or a silently accepted value.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from msp_reports.exceptions import RegistryError
from msp_reports.registry import load_registry

DEMO = Path(__file__).resolve().parents[1] / "include" / "customers.yaml"


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load(DEMO.read_text())


def _customer(raw: dict, code: str) -> dict:
    return next(c for c in raw["customers"] if c["code"] == code)


def _load(tmp_path: Path, raw: dict) -> str:
    path = tmp_path / "customers.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    with pytest.raises(RegistryError) as err:
        load_registry(path)
    return str(err.value)


def test_a_code_with_a_trailing_newline_is_refused(tmp_path, raw):
    _customer(raw, "ACME")["code"] = "ACME\n"
    text = _load(tmp_path, raw)
    assert f"{tmp_path / 'customers.yaml'}: customer 'ACME\\n': code: must be 2-32 upper-case" in text


@pytest.mark.parametrize("value", ["25:00", "09:60", "9am", "", 540])
def test_deliver_not_before_must_be_a_time_of_day(tmp_path, raw, value):
    raw["msp"]["deliver_not_before"] = value
    text = _load(tmp_path, raw)
    assert text.startswith(f"{tmp_path / 'customers.yaml'}: msp.deliver_not_before: ")
    assert "HH:MM" in text and "Value error" not in text


def test_deliver_not_before_is_kept_as_hh_mm(tmp_path, raw):
    raw["msp"]["deliver_not_before"] = "7:30"
    path = tmp_path / "customers.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert load_registry(path).msp.deliver_not_before == "07:30"


@pytest.mark.parametrize("value", [float("inf"), float("nan"), "99999999999d", 1e300, -3])
def test_approval_cutoff_out_of_range_is_named_not_a_crash(tmp_path, raw, value):
    raw["msp"]["approval_cutoff"] = value
    text = _load(tmp_path, raw)
    assert text == f"{tmp_path / 'customers.yaml'}: msp.approval_cutoff: must be between 1 minute and 6 days (e.g. '48h')"


def test_a_yaml_inf_cutoff_is_named(tmp_path):
    """``approval_cutoff: .inf`` as a user writes it: YAML reads a float infinity."""
    text = DEMO.read_text().replace('deliver_not_before: "09:00"', 'deliver_not_before: "09:00"\n  approval_cutoff: .inf')
    path = tmp_path / "customers.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RegistryError, match=r"customers.yaml: msp.approval_cutoff: must be between"):
        load_registry(path)


@pytest.mark.parametrize(("field", "value"), [
    ("default_slo_pct", 150), ("default_slo_pct", float("nan")), ("default_slo_pct", 0),
    ("sla_drop_points", float("nan")), ("sla_drop_points", 150), ("sla_drop_points", -1),
    ("backup_stale_hours", float("inf")), ("backup_stale_hours", -5),
    ("backlog_growth", 0), ("sla_breach_growth", -2),
])
def test_thresholds_out_of_range_are_named(tmp_path, raw, field, value):
    _customer(raw, "BRVO")["thresholds"] = {field: value}
    text = _load(tmp_path, raw)
    assert f"{tmp_path / 'customers.yaml'}: customer 'BRVO': thresholds.{field}: " in text


@pytest.mark.parametrize(("key", "value"), [("slo_pct", "150"), ("slo_pct", "nan"), ("slo_pct.Firewalls", "-1"),
                                            ("slo_pct", "ninety")])
def test_a_source_slo_out_of_range_is_named(tmp_path, raw, key, value):
    _customer(raw, "DLTA")["sources"]["uptime"]["ref"][key] = value
    text = _load(tmp_path, raw)
    assert f"customer 'DLTA': sources.uptime.ref.{key}: must be a percentage above 0 and at most 100" in text


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-4", "daily"])
def test_an_rpo_that_is_no_number_of_hours_is_named(tmp_path, raw, value):
    _customer(raw, "ACME")["sources"]["backups"]["ref"]["rpo_hours"] = value
    text = _load(tmp_path, raw)
    assert f"customer 'ACME': sources.backups.ref.rpo_hours: must be a number of hours above 0" in text


def test_good_thresholds_and_source_numbers_still_load(tmp_path, raw):
    _customer(raw, "BRVO")["thresholds"] = {"default_slo_pct": 99.5, "sla_drop_points": 2, "backup_stale_hours": 36}
    _customer(raw, "DLTA")["sources"]["uptime"]["ref"]["slo_pct.Firewalls"] = "99.5"
    _customer(raw, "ACME")["sources"]["backups"]["ref"]["rpo_hours"] = 12
    raw["msp"]["approval_cutoff"] = "2d"
    path = tmp_path / "customers.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    registry = load_registry(path)
    assert registry.get("BRVO").thresholds.default_slo_pct == 99.5
    assert registry.msp.approval_cutoff == dt.timedelta(days=2)


def test_a_registry_path_that_is_a_directory_is_named(tmp_path):
    with pytest.raises(RegistryError) as err:
        load_registry(tmp_path)
    assert str(err.value) == f"{tmp_path}: the registry path is a directory, not a YAML file"


def test_a_registry_file_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "customers.yaml"
    path.write_bytes(DEMO.read_text().replace("Acme Manufacturing Ltd", "Acm\u00e9 Manufacturing Ltd").encode("latin-1"))
    with pytest.raises(RegistryError) as err:
        load_registry(path)
    assert str(err.value).startswith(f"{path}: not UTF-8 text (byte 0xe9 at offset ")
    assert "save the file as UTF-8" in str(err.value)
