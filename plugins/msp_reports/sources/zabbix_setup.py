"""Build one customer's Zabbix services and SLAs the way the report reads them, idempotently.

The convention is in :mod:`msp_reports.sources.zabbix`; this writes it through the API, so the
set-up is not built by hand for every customer. For each row (site x device class) it makes
or updates the service ``<CODE> <site> <class>`` with the tags ``customer``/``site``/``class``/
``sla=<CODE>:<SLO>`` and problem tags ``customer``/``site``/``class`` (so the problems of the
hosts tagged that way feed it); for each SLO value it makes or updates the daily SLA
``<CODE> uptime <SLO>%`` in the customer's timezone, selecting by the one ``sla`` tag. Running it
twice changes nothing the second time. It never deletes: a service or SLA it did not make is
left as it is, and one it finds with the wrong settings is corrected in place.

Usage (the connection and timezone come from the registry's entry for the customer)::

    python -m msp_reports.sources.zabbix_setup ACME HQ/Servers/99.9 HQ/Firewalls/99.5 DR/Servers/99.9
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from msp_reports.sources.zabbix import (
    CLASS_TAG, CUSTOMER_TAG, DAILY, SITE_TAG, SLA_ENABLED, SLA_TAG, SLA_TAG_EQUALS, ZabbixHook,
)

PROBLEM_TAG_EQUALS = 0  # service problem_tags operator: 0 equals, 2 contains
SERVICE_TAG_EQUALS = 1  # service.get tag filter operator: 1 equals


@dataclass(frozen=True)
class RowSpec:
    site: str
    device_class: str
    slo: float

    @classmethod
    def parse(cls, text: str) -> RowSpec:
        """``"HQ/Servers/99.9"``."""
        parts = text.split("/")
        if len(parts) != 3 or not all(p.strip() for p in parts):
            raise ValueError(f"row {text!r} is not SITE/CLASS/SLO, e.g. HQ/Servers/99.9")
        slo = float(parts[2])
        if not 0 < slo <= 100:
            raise ValueError(f"row {text!r}: SLO {slo} is not in (0, 100]")
        return cls(parts[0].strip(), parts[1].strip(), slo)


@dataclass
class Changes:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"created {len(self.created)}, updated {len(self.updated)}, unchanged {len(self.unchanged)}"
                + "".join(f"\n  created {n}" for n in self.created)
                + "".join(f"\n  updated {n}" for n in self.updated))


def sla_key(code: str, slo: float) -> str:
    return f"{code}:{slo:g}"


def _tags(pairs: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"tag": t, "value": v} for t, v in pairs]


def _tag_set(record: dict) -> set[tuple[str, str]]:
    return {(t["tag"], t.get("value", "")) for t in record.get("tags") or []}


def provision(hook: ZabbixHook, code: str, timezone: str, rows: Sequence[RowSpec],
              effective: dt.datetime | None = None) -> Changes:
    """Create or correct ``code``'s row services and SLAs; return what changed."""
    changes = Changes()
    existing = hook.rpc("service.get", {
        "output": ["serviceid", "name"], "selectTags": ["tag", "value"], "selectProblemTags": "extend",
        "tags": [{"tag": CUSTOMER_TAG, "value": code, "operator": SERVICE_TAG_EQUALS}],
    })
    for row in rows:
        name = f"{code} {row.site} {row.device_class}"
        tags = [(CUSTOMER_TAG, code), (SITE_TAG, row.site), (CLASS_TAG, row.device_class),
                (SLA_TAG, sla_key(code, row.slo))]
        problem_tags = [{"tag": t, "operator": PROBLEM_TAG_EQUALS, "value": v} for t, v in tags[:3]]
        found = next((s for s in existing if {(CUSTOMER_TAG, code), (SITE_TAG, row.site),
                                              (CLASS_TAG, row.device_class)} <= _tag_set(s)), None)
        if found is None:
            hook.rpc("service.create", {"name": name, "algorithm": 1, "sortorder": 0, "tags": _tags(tags),
                                        "problem_tags": problem_tags})
            changes.created.append(f"service {name!r}")
            continue
        keep = [(t, v) for t, v in _tag_set(found) if t != SLA_TAG or not v.startswith(f"{code}:")]
        wanted_tags = sorted(set(keep) | set(tags))
        have_problem = {(p["tag"], str(p.get("operator")), p.get("value", "")) for p in found.get("problem_tags") or []}
        want_problem = {(p["tag"], str(p["operator"]), p["value"]) for p in problem_tags}
        if sorted(_tag_set(found)) == wanted_tags and have_problem == want_problem:
            changes.unchanged.append(f"service {found['name']!r}")
            continue
        hook.rpc("service.update", {"serviceid": found["serviceid"], "tags": _tags(wanted_tags),
                                    "problem_tags": problem_tags})
        changes.updated.append(f"service {found['name']!r}")

    slas = hook.rpc("sla.get", {"output": ["slaid", "name", "period", "slo", "timezone", "status"],
                                "selectServiceTags": ["tag", "operator", "value"]})
    for slo in sorted({r.slo for r in rows}, reverse=True):
        key = sla_key(code, slo)
        name = f"{code} uptime {slo:g}%"
        wanted = {"period": DAILY, "slo": slo, "timezone": timezone, "status": SLA_ENABLED,
                  "service_tags": [{"tag": SLA_TAG, "operator": SLA_TAG_EQUALS, "value": key}]}
        found = next((s for s in slas if any(t.get("tag") == SLA_TAG and t.get("value") == key
                                             for t in s.get("service_tags") or [])
                      and str(s.get("status")) == str(SLA_ENABLED)), None)
        if found is None:
            start = effective or dt.datetime.now(dt.timezone.utc)
            hook.rpc("sla.create", {"name": name, "effective_date": int(start.timestamp()), **wanted})
            changes.created.append(f"SLA {name!r}")
            continue
        same = (str(found["period"]) == str(DAILY) and float(found["slo"]) == slo
                and found["timezone"] == timezone
                and [(t["tag"], str(t["operator"]), t["value"]) for t in found["service_tags"]]
                == [(SLA_TAG, str(SLA_TAG_EQUALS), key)])
        if same:
            changes.unchanged.append(f"SLA {found['name']!r}")
            continue
        hook.rpc("sla.update", {"slaid": found["slaid"], **wanted})
        changes.updated.append(f"SLA {found['name']!r}")
    return changes


def main(argv: Sequence[str] | None = None) -> int:
    from msp_reports.registry import load_registry
    from msp_reports.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m msp_reports.sources.zabbix_setup", description=__doc__.split("\n")[0])
    parser.add_argument("customer", help="the customer's code in the registry")
    parser.add_argument("rows", nargs="+", help="SITE/CLASS/SLO, e.g. HQ/Servers/99.9")
    parser.add_argument("--registry", default=None, help="registry file (default: the pipeline's)")
    args = parser.parse_args(argv)
    registry = load_registry(args.registry or Settings.load().registry_path)
    customer = next((c for c in registry.customers if c.code == args.customer), None)
    if customer is None:
        parser.error(f"no customer {args.customer!r} in the registry")
    refs = [r for r in customer.sources.get("uptime", []) if r.system == "zabbix"]
    if not refs:
        parser.error(f"customer {args.customer}: sources.uptime has no zabbix entry")
    try:
        rows = [RowSpec.parse(text) for text in args.rows]
    except ValueError as exc:
        parser.error(str(exc))
    from airflow.exceptions import AirflowNotFoundException

    from msp_reports.exceptions import SourceError

    conn_id = refs[0].conn_id
    hook = ZabbixHook(conn_id)
    try:
        changes = provision(hook, refs[0].ref["service_tag"], customer.timezone, rows)
        hook.logout()
    except AirflowNotFoundException:
        print(f"customer {args.customer}: the Airflow connection {conn_id!r} is not defined here; define it "
              f"(Admin -> Connections, `airflow connections add`, or AIRFLOW_CONN_{conn_id.upper()})",
              file=sys.stderr)
        return 2
    except SourceError as exc:
        print(f"customer {args.customer}: {exc}", file=sys.stderr)
        return 1
    print(f"customer {args.customer}: {changes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
