"""``python -m msp_reports.qbr build``: write one customer's QBR pack to a folder, for engineers.

    python -m msp_reports.qbr build --store var/reports --registry include/customers.yaml \\
        --customer ACME --quarter 2026-Q3 --out /tmp/acme-qbr [--narrative FILE]

Reads the stored weekly snapshots only (nothing is fetched, nothing is written to the store) and
writes the pack's files (report.pdf, report.md, subject.txt, cover_note.html, teams_card.json,
sources.json) into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m msp_reports.qbr", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build one customer's pack into a folder")
    build.add_argument("--store", required=True, help="the report store (a folder or an object-storage URL)")
    build.add_argument("--registry", required=True, help="the customer registry (YAML)")
    build.add_argument("--customer", required=True, help="the customer's code, e.g. ACME")
    build.add_argument("--quarter", required=True, help="e.g. 2026-Q3")
    build.add_argument("--out", required=True, help="the folder to write the pack into")
    build.add_argument("--narrative", help="a UTF-8 text file with the 'quarter in review' narrative")
    args = parser.parse_args(argv)

    from msp_reports.exceptions import ReportError
    from msp_reports.qbr import Quarter, build_pack
    from msp_reports.registry import load_registry
    from msp_reports.store import ReportStore

    try:
        quarter = Quarter.parse(args.quarter)
        registry = load_registry(args.registry)
        customer = next((c for c in registry.customers if c.code == args.customer), None)
        if customer is None:
            print(f"{args.customer}: no such customer in {args.registry}", file=sys.stderr)
            return 2
        narrative = Path(args.narrative).read_text(encoding="utf-8") if args.narrative else ""
        files = build_pack(ReportStore(args.store), customer, registry.msp, quarter, narrative)
    except (ValueError, OSError, ReportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (out / name).write_bytes(data)
    print(f"{customer.code} {quarter}: {len(files)} files in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
