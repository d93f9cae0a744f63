"""Render stored weeks to PNG pages, to look at the reports as a customer will.

``python -m devtools.render_pages [--store var/demo/store] [--week-of 2026-11-16]
[--customers ACME FXTR] [--out var/pages] [--dpi 80]``

Each customer's week is re-rendered from the store's ``reconciled.json`` (and the earlier
weeks' ``snapshot.json`` for the trend charts, ``commentary.md`` if present) with the current
templates, so a template change shows without running the DAG again. Pages are written as
``<out>/<CUSTOMER>-<n>.png`` (with ``<out>/<CUSTOMER>.pdf``) by poppler's ``pdftoppm``.
Without ``--week-of`` the latest week present in the store is used.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from msp_reports.reconcile import Reconciled
from msp_reports.registry import load_registry
from msp_reports.settings import PROJECT_ROOT, Settings
from msp_reports.snapshot import WeeklySnapshot

DEFAULT_STORE = PROJECT_ROOT / "var" / "demo" / "store"
DEFAULT_OUT = PROJECT_ROOT / "var" / "pages"
NO_PDFTOPPM = "pdftoppm not found: install poppler-utils (Debian/Ubuntu: sudo apt-get install poppler-utils)"


def latest_week(store: Path) -> dt.date | None:
    """The newest ``week_of`` for which any customer has a reconciled week."""
    weeks = {path.parent.name for path in store.glob("*/*/reconciled.json") if not path.parts[-3].startswith("_")}
    return max((dt.date.fromisoformat(w) for w in weeks), default=None)


def history(store: Path, code: str, week_of: dt.date, weeks: int) -> list[WeeklySnapshot]:
    """The stored snapshots of the ``weeks`` weeks before ``week_of``, oldest first."""
    found = []
    for back in range(weeks, 0, -1):
        path = store / code / (week_of - dt.timedelta(days=7 * back)).isoformat() / "snapshot.json"
        if path.is_file():
            found.append(WeeklySnapshot.model_validate_json(path.read_bytes()))
    return found


def to_png(pdf: Path, out: Path, code: str, dpi: int) -> list[Path]:
    """One PNG per page, ``<out>/<code>-<n>.png``; older pages of that customer are removed first."""
    for old in out.glob(f"{code}-*.png"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["pdftoppm", "-r", str(dpi), "-png", str(pdf), f"{tmp}/page"], check=True)
        pages = sorted(Path(tmp).glob("page-*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
        written = []
        for number, page in enumerate(pages, start=1):
            target = out / f"{code}-{number}.png"
            shutil.move(page, target)
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    from msp_reports.render import TREND_WEEKS, load_branding, render_report

    parser = argparse.ArgumentParser(prog="render_pages", description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE, help="report store folder (default: %(default)s)")
    parser.add_argument("--week-of", type=dt.date.fromisoformat, help="the Monday of the week (default: latest)")
    parser.add_argument("--customers", nargs="*", help="customer codes (default: every customer with that week)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the pages go (default: %(default)s)")
    parser.add_argument("--dpi", type=int, default=80, help="resolution of the PNG pages (default: %(default)s)")
    args = parser.parse_args(argv)

    if shutil.which("pdftoppm") is None:
        print(NO_PDFTOPPM, file=sys.stderr)
        return 2
    if not args.store.is_dir():
        print(f"{args.store}: no report store here; run `bash scripts/demo.sh` first", file=sys.stderr)
        return 2
    week_of = args.week_of or latest_week(args.store)
    if week_of is None:
        print(f"{args.store}: no reconciled week in the store; run `bash scripts/demo.sh` first", file=sys.stderr)
        return 2

    registry = load_registry(Settings.load().registry_path)
    branding = load_branding()
    customers = registry.select(args.customers)
    args.out.mkdir(parents=True, exist_ok=True)
    missing = []
    for customer in customers:
        folder = args.store / customer.code / week_of.isoformat()
        if not (folder / "reconciled.json").is_file():
            missing.append(customer.code)
            continue
        rec = Reconciled.model_validate_json((folder / "reconciled.json").read_bytes())
        notes = folder / "commentary.md"
        commentary = notes.read_text(encoding="utf-8") if notes.is_file() else ""
        out = render_report(rec, customer, registry.msp, commentary,
                            history=history(args.store, customer.code, week_of, TREND_WEEKS - 1),
                            branding=branding.for_customer(customer.code))
        pdf = args.out / f"{customer.code}.pdf"
        pdf.write_bytes(out.pdf)
        for page in to_png(pdf, args.out, customer.code, args.dpi):
            print(page)
    if missing:
        print(f"no reconciled week {week_of} in {args.store} for: {', '.join(missing)}", file=sys.stderr)
    return 1 if missing and len(missing) == len(customers) else 0


if __name__ == "__main__":
    sys.exit(main())
