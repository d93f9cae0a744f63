"""Render: one report to PDF (``msp_reports.render.render_report``) on stored reconciled data.

Children (``python -m benchmarks.render <command> ...``):

- ``prepare <home>``: the 12 demo customers' week extracted and reconciled against the
  simulators into ``<home>/store``, on top of the seeded earlier weeks (baseline and trend
  charts, as in the demo); picks the typical report (median number of table rows) and the
  largest (most rows).
- ``report <home> <CODE> <week_of> <repeats> [largest-week]``: one untimed render (imports,
  fonts: the cold cost), then ``repeats`` renders of the report, each after one render of the
  fixed reference document, so both see the same machine; this process's peak RSS is the
  render's. With ``largest-week``, the customer's week is the largest we plan for
  (:data:`LARGEST_WEEK`: 10k tickets and changes, 2,000 incidents) on top of its real data.
- ``reference``: only the reference document, once: the peak-RSS reference (WeasyPrint itself).
- ``task <home> <CODE>``: the render task body (``pipeline.render``) once in a fresh process,
  as a task would run it: the peak RSS of one task.

Driver: ``python -m benchmarks.render measure <workdir> [repeats]`` seeds the earlier weeks,
runs all of the above and prints the figures as JSON.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import sys
import time
from pathlib import Path

# A fixed one-page document: the same bytes every run, independent of the project's templates.
REFERENCE_ROWS = 40
REFERENCE_HTML = (
    "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Reference</title><style>"
    "@page { size: A4; margin: 20mm; @bottom-right { content: 'Page ' counter(page); } }"
    "html { font-family: sans-serif; font-size: 9pt; } table { border-collapse: collapse; width: 100%; }"
    "td, th { border-bottom: 0.5pt solid #999; padding: 1mm 2mm; text-align: left; }"
    "</style></head><body><h1>Reference document</h1><p>"
    + "A fixed paragraph of ordinary text for the benchmark's reference render. " * 12
    + "</p><table><thead><tr><th>Site</th><th>Class</th><th>Uptime</th><th>Target</th></tr></thead><tbody>"
    + "".join(f"<tr><td>Site {i}</td><td>Servers</td><td>{99 + i / 100:.2f}%</td><td>99.90%</td></tr>"
              for i in range(REFERENCE_ROWS))
    + "</tbody></table></body></html>"
)


def render_reference() -> bytes:
    from weasyprint import HTML

    return HTML(string=REFERENCE_HTML).write_pdf()


# The largest week a report is built for (issue 17: 543 pages, 98 s and ~2 GB before the long
# tables were capped): tickets opened, changes executed, security incidents (one in six open).
LARGEST_WEEK = {"tickets": 10_000, "changes": 10_000, "incidents": 2_000}


def largest_week(snap):
    """``snap`` with :data:`LARGEST_WEEK`'s volumes added to its tickets and security sections."""
    from msp_reports.snapshot import ChangeRecord, Incident

    tickets, security = snap.tickets.data, snap.security.data
    if tickets is None or security is None:
        raise SystemExit(f"{snap.customer}: tickets and security need data for the largest week")
    start = snap.week_start
    changes = [ChangeRecord(ref=f"CHG-B{n:05d}", summary=f"Scheduled patch batch {n}",
                            executed_at=start + dt.timedelta(seconds=50 * n),
                            status="failed" if n % 5 == 0 else "completed", source=snap.tickets.status.system)
               for n in range(LARGEST_WEEK["changes"])]
    severities = ("high", "medium", "low", "informational")
    incidents = [Incident(ref=f"INC-B{n:05d}", title=f"Endpoint alert {n}", severity=severities[n % 4],
                          status="open" if n % 6 == 0 else "resolved",
                          created_at=start + dt.timedelta(seconds=250 * n), source=snap.security.status.system)
                 for n in range(LARGEST_WEEK["incidents"])]
    opened = tickets.opened + LARGEST_WEEK["tickets"]
    tickets = tickets.model_copy(update={"opened": opened, "closed": tickets.closed + LARGEST_WEEK["tickets"],
                                         "changes": [*tickets.changes, *changes]})
    security = security.model_copy(update={"incidents": [*security.incidents, *incidents]})
    return snap.model_copy(update={"tickets": snap.tickets.model_copy(update={"data": tickets}),
                                   "security": snap.security.model_copy(update={"data": security})})


_SEPARATOR = re.compile(r"^\|[\s:|-]+\|?$")


def table_rows(markdown: str) -> int:
    """Body rows of every Markdown table (header and separator lines not counted)."""
    lines = markdown.splitlines()
    rows = 0
    for i, line in enumerate(lines):
        if not line.startswith("|") or _SEPARATOR.match(line):
            continue
        is_header = i + 1 < len(lines) and bool(_SEPARATOR.match(lines[i + 1]))
        rows += not is_header
    return rows


def _settings(home: Path):
    from msp_reports.settings import INCLUDE, Settings

    return Settings(registry_path=str(INCLUDE / "customers.yaml"), store_root=str(home / "store"),
                    archive_root=str(home / "archive"))


# ---- children ---------------------------------------------------------------------------------
def prepare(home: Path) -> dict:
    """The benchmark week for the 12 demo customers on top of the seeded weeks before it."""
    import os

    from benchmarks.common import bench_week
    from msp_reports import pipeline
    from devtools.demo import DemoServices
    from msp_reports.render import render_markdown

    week = bench_week()
    settings = _settings(home)
    os.environ["MSP_REPORTS_HOME"] = str(home)
    rows: dict[str, int] = {}
    inflatable: list[str] = []  # customers whose tickets and security sections have data
    with DemoServices(week, home) as services:
        os.environ.update(services.connection_env())
        for c in services.registry.customers:
            item = {"customer": c.code, "week_of": week.isoformat()}
            for domain in pipeline.DOMAINS:
                pipeline.extract(settings, item, domain)
            pipeline.build_snapshot(settings, item)
        store = pipeline.ReportStore(settings.store_root)
        for c in services.registry.customers:
            rec = pipeline.load_reconciled(store, c.code, week)
            rows[c.code] = table_rows(render_markdown(rec, c, services.registry.msp))
            if rec.snapshot.tickets.data is not None and rec.snapshot.security.data is not None:
                inflatable.append(c.code)
    by_rows = sorted(rows, key=lambda code: (rows[code], code))
    return {"week_of": week.isoformat(), "rows": rows, "typical": by_rows[(len(by_rows) - 1) // 2],
            "largest": by_rows[-1], "largest_week": max(inflatable, key=lambda code: (rows[code], code))}


def _history(store, code: str, week_of: dt.date) -> list:
    """The earlier snapshots the render task draws trends from (as ``pipeline.render`` reads them)."""
    from msp_reports import pipeline
    from msp_reports.render import TREND_WEEKS

    earlier = (week_of - dt.timedelta(weeks=back) for back in range(TREND_WEEKS - 1, 0, -1))
    return [s for s in (pipeline.load_snapshot(store, code, w) for w in earlier) if s is not None]


def _largest_reconciled(store, customer, week_of: dt.date):
    """The customer's week at :data:`LARGEST_WEEK`, reconciled as the pipeline would."""
    from msp_reports import pipeline
    from msp_reports.reconcile import reconcile

    snap = largest_week(pipeline.load_snapshot(store, customer.code, week_of))
    previous = pipeline.load_snapshot(store, customer.code, week_of - dt.timedelta(weeks=1))
    return reconcile(snap, previous, customer.thresholds)


def report(home: Path, code: str, week_of: str, repeats: int, largest: bool = False) -> dict:
    from benchmarks.common import self_peak_rss_mb

    started = time.perf_counter()
    from msp_reports import pipeline
    from msp_reports.registry import load_registry
    from msp_reports.render import render_report

    settings = _settings(home)
    registry = load_registry(settings.registry_path)
    customer = registry.get(code)
    store = pipeline.ReportStore(settings.store_root)
    rec = pipeline.load_reconciled(store, code, dt.date.fromisoformat(week_of))
    if largest:
        rec = _largest_reconciled(store, customer, dt.date.fromisoformat(week_of))
    history = _history(store, code, dt.date.fromisoformat(week_of))
    first = render_report(rec, customer, registry.msp, history=history)
    cold = time.perf_counter() - started
    samples, reference, cpu = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        render_reference()
        t1, c1 = time.perf_counter(), time.thread_time()
        out = render_report(rec, customer, registry.msp, history=history)
        t2, c2 = time.perf_counter(), time.thread_time()
        reference.append(t1 - t0)
        samples.append(t2 - t1)
        cpu.append(c2 - c1)
    from pypdf import PdfReader  # a dev dependency, only to count pages

    reader = PdfReader(io.BytesIO(first.pdf))
    pages = len(reader.pages)
    summary_lines = sum(page.extract_text().count("… and ") for page in reader.pages)
    return {"cold_s": cold, "summary_lines": summary_lines,
            "records": len(rec.snapshot.tickets.data.changes if rec.snapshot.tickets.data else [])
            + len(rec.snapshot.security.data.incidents if rec.snapshot.security.data else []), "samples_s": samples, "cpu_s": cpu, "reference_s": reference, "pdf_bytes": len(out.pdf),
            "pages": pages, "rows": table_rows(out.markdown), "history_weeks": len(history),
            "peak_rss_mb": self_peak_rss_mb()}


def reference_only() -> dict:
    from benchmarks.common import self_peak_rss_mb

    started = time.perf_counter()
    pdf = render_reference()
    return {"cold_s": time.perf_counter() - started, "pdf_bytes": len(pdf), "peak_rss_mb": self_peak_rss_mb()}


def task(home: Path, code: str, week_of: str) -> dict:
    """``pipeline.render`` as the render task runs it: registry, store, template, PDF, receipts."""
    from benchmarks.common import self_peak_rss_mb

    started = time.perf_counter()
    from msp_reports import pipeline

    result = pipeline.render(_settings(home), {"customer": code, "week_of": week_of})
    return {"seconds": time.perf_counter() - started, "pdf_sha256": result["pdf_sha256"],
            "peak_rss_mb": self_peak_rss_mb()}


def main(argv: list[str]) -> None:
    from benchmarks.common import write_result

    command, args = argv[0], argv[1:]
    if command == "prepare":
        write_result(prepare(Path(args[0])))
    elif command == "report":
        write_result(report(Path(args[0]), args[1], args[2], int(args[3]), largest=args[4:] == ["largest-week"]))
    elif command == "reference":
        write_result(reference_only())
    elif command == "task":
        write_result(task(Path(args[0]), args[1], args[2]))
    elif command == "measure":
        import json
        import tempfile

        from benchmarks.history import seed

        workdir = Path(args[0]) if args else Path(tempfile.mkdtemp(prefix="bench-render-"))
        print(json.dumps(measure(workdir, int(args[1]) if len(args) > 1 else 3, seed(workdir / "history")),
                         indent=2, default=str))
    else:
        raise SystemExit(f"unknown command {command!r}")


# ---- driver -----------------------------------------------------------------------------------
def measure(workdir: Path, repeats: int, history_store: Path) -> dict:
    from benchmarks.common import airflow_env, median, p95, run_child
    from benchmarks.history import copy_into

    home = workdir / "msp"
    copy_into(history_store, home)
    env = airflow_env(workdir / "airflow", home)
    prep = run_child("benchmarks.render", ["prepare", str(home)], env=env, workdir=workdir, name="render-prepare")
    week_of = prep.result["week_of"]
    out: dict = {"prepare": prep.result}
    reference = run_child("benchmarks.render", ["reference"], env=env, workdir=workdir, name="render-reference")
    out["reference"] = {**reference.result, "peak_rss_mb": reference.peak_rss_mb}
    for kind in ("typical", "largest", "largest_week"):
        code = prep.result[kind]
        extra = ["largest-week"] if kind == "largest_week" else []
        child = run_child("benchmarks.render", ["report", str(home), code, week_of, str(repeats), *extra], env=env,
                          workdir=workdir, name=f"render-{kind}")
        r = child.result
        out[kind] = {"code": code, "median_s": median(r["samples_s"]), "p95_s": p95(r["samples_s"]),
                     "reference_median_s": median(r["reference_s"]), "cold_s": r["cold_s"],
                     "cpu_median_s": median(r["cpu_s"]),
                     "peak_rss_mb": child.peak_rss_mb, "pages": r["pages"], "rows": r["rows"],
                     "history_weeks": r["history_weeks"],
                     "pdf_bytes": r["pdf_bytes"], "samples_s": r["samples_s"],
                     "records": r["records"], "summary_lines": r["summary_lines"]}
    task_child = run_child("benchmarks.render", ["task", str(home), prep.result["largest"], week_of], env=env,
                           workdir=workdir, name="render-task")
    out["task"] = {**task_child.result, "peak_rss_mb": task_child.peak_rss_mb, "code": prep.result["largest"]}
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
