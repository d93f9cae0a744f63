"""``scripts/approve.sh``: decide one customer's week through its Airflow Variable, in the Airflow
home ``scripts/airflow.sh`` runs (``.airflow/ui``, or ``$MSP_AIRFLOW_HOME``).

``.venv/bin/airflow variables set ...`` run by hand would use ``~/airflow`` (a database the
scheduler never reads) unless AIRFLOW_HOME and the database are set exactly as airflow.sh sets
them; this sets them from the same place (:func:`devtools.demo.airflow_env`) and then runs
``airflow variables set`` with the value the sensor reads (see :func:`msp_reports.approval.parse_decision`)::

    bash scripts/approve.sh ACME 2026-11-16 approve 3f2a9c1e    # pin the PDF you read (its hash, 8+ hex)
    bash scripts/approve.sh ACME 2026-11-16 approve             # only once it is rendered
    bash scripts/approve.sh ACME 2026-11-16 reject backup figures need checking
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys

from msp_reports.approval import parse_decision, variable_key
from msp_reports.exceptions import ApprovalError


def decision_value(decision: str, rest: list[str]) -> str:
    """The Variable's value for ``approve [PIN]`` or ``reject REASON...``; refused as the sensor would."""
    words = " ".join(rest).strip()
    if decision == "reject" and not words:
        raise SystemExit("approve.sh: a rejection needs a reason, e.g. reject backup figures need checking")
    if decision == "approve" and len(rest) > 1:
        raise SystemExit("approve.sh: after approve give nothing or the PDF's hash (8+ hex characters)")
    return f"{decision} {words}".strip()


def _registry_codes() -> list[str]:
    """The customer codes of the registry the demo and airflow.sh use (``include/customers.yaml``)."""
    from msp_reports.registry import load_registry
    from msp_reports.settings import Settings

    return [c.code for c in load_registry(Settings.load().registry_path).customers]


def main(argv: list[str] | None = None) -> int:
    from devtools.demo import airflow_env
    from devtools.standalone import ui_dir, ui_home

    parser = argparse.ArgumentParser(prog="scripts/approve.sh", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("customer", help="the customer's code, e.g. ACME")
    parser.add_argument("week_of", type=dt.date.fromisoformat, help="the Monday the reported week starts")
    parser.add_argument("decision", choices=("approve", "reject"))
    parser.add_argument("rest", nargs="*", help="approve: the PDF hash to pin (optional); reject: the reason")
    args = parser.parse_args(argv)
    if args.week_of.weekday() != 0:
        parser.error(f"week_of {args.week_of} is not a Monday (the week starts on a Monday)")
    code = args.customer.upper()
    known = _registry_codes()
    if code not in known:
        parser.error(f"no customer {code!r} in the registry (customers: {', '.join(known)})")
    key = variable_key(code, args.week_of)
    value = decision_value(args.decision, args.rest)
    try:
        parse_decision(value, key)
    except ApprovalError as exc:
        raise SystemExit(f"approve.sh: {exc}") from None
    home = ui_home()
    if not (home / "airflow.db").exists():
        raise SystemExit(f"approve.sh: no Airflow database in {home}: start bash scripts/airflow.sh first "
                         "(or set MSP_AIRFLOW_HOME to the home it uses)")
    env = {**os.environ, **airflow_env(home, ui_dir())}
    subprocess.run([sys.executable, "-m", "airflow", "variables", "set", key, value], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    print(f"{key} = {value!r} (Airflow home {home}); the run's Variable watcher reads it within a minute")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
