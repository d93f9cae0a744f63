"""Resend one customer's approved report on one channel, on purpose, and record it in the ledger.

``python -m msp_reports.resend ACME 2026-11-16 email --reason "CTO lost the mail"``
(or ``bash scripts/resend.sh …``). Channels: ``email``, ``teams``, ``archive``.

This is the way out of ``DeliveryStateUnknown`` (a send was interrupted and the channel cannot
say whether it arrived: SMTP, a Workflows webhook): check the channel, then resend if it did
not arrive. It also sends a report again that did arrive, when someone asks for it. What it
sends is the stored version, every file still the approved one (the PDF, the cover note, the
Teams card...: :func:`msp_reports.pipeline.deliver`); nothing is rendered again. The receipt's ``resends`` goes up by one, the idempotency key
gets a ``.resendN`` suffix (a new Message-ID, a new card attachment id), and the history keeps
who asked, why and when. Runs with the deployment's Airflow configuration (connections and the
``msp_reports_*`` Variables), like any Airflow CLI command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import sys

from msp_reports.delivery.ledger import CHANNELS


def _settings():
    from msp_reports.settings import Settings

    try:
        from airflow.sdk import Variable

        return Settings.load(lambda key, default: Variable.get(key, default=default))
    except Exception:  # noqa: BLE001 - no Airflow metadata database here: the project defaults
        return Settings.load()


def resend(customer: str, week_of: dt.date, channel: str, *, reason: str, by: str, settings=None) -> dict:
    from msp_reports import pipeline
    from msp_reports.delivery.ledger import Ledger
    from msp_reports.store import ReportStore

    settings = settings or _settings()
    item = {"customer": customer, "week_of": week_of.isoformat()}
    result = pipeline.deliver(settings, item, channel, resend=True, note={"by": by, "reason": reason})
    receipt = Ledger(ReportStore(settings.store_root), customer, week_of).receipt(channel) or {}
    return {**result, "resends": receipt.get("resends"), "via": receipt.get("receipt", {}).get("via")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m msp_reports.resend", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("customer", help="customer code, e.g. ACME")
    parser.add_argument("week_of", type=dt.date.fromisoformat, help="the Monday the reported week starts")
    parser.add_argument("channel", choices=CHANNELS)
    parser.add_argument("--reason", default="resent on request", help="why (kept in the ledger)")
    parser.add_argument("--by", default=getpass.getuser(), help="who (kept in the ledger)")
    args = parser.parse_args(argv)
    try:
        out = resend(args.customer, args.week_of, args.channel, reason=args.reason, by=args.by)
    except Exception as exc:  # noqa: BLE001 - one line for the operator; the ledger has the detail
        print(f"resend failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
