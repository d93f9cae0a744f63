"""``python -m benchmarks`` (``bash scripts/bench.sh``): run every benchmark, print the table,
write it to ``var/bench/latest.md``.

Each figure is measured against a reference run in the same process tree on the same machine,
at the same time, because absolute times on a shared machine drift: Airflow's own example DAG
for the parse, a fixed HTML document for the render, the plain-loop floor for the DAG run, the
12-customer run (or the customer alone) for scale.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from benchmarks.common import PROJECT_ROOT, SHAPES, ChildFailed, airflow_env, run_child
from benchmarks.report import Row, machine, main_table, markdown_table, mb, secs, times, yes

SECTIONS = ("parse", "render", "e2e", "scale")
PARSE_REPEATS = 15  # samples of ~40 ms spread 30-60 ms here; 7 left the growth ratio at the mercy of one or two
RENDER_REPEATS = 15
# customers -> the demo shapes sampled at that size (500: every other shape, to stay in time)
SCALE_SIZES = {12: tuple(range(SHAPES)), 100: tuple(range(SHAPES)), 500: tuple(range(0, SHAPES, 2))}

PARSE_TARGET = 1.5
GROWTH_TARGET = 1.10
RENDER_TARGET_S = 1.0
RSS_TARGET_MB = 300
E2E_TARGET = 2.0


def _error_row(section: str, exc: BaseException) -> Row:
    first = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
    return Row(f"{section}: did not run", first, "", "", "", "error")


# ---- sections ---------------------------------------------------------------------------------
_SEEDED: dict[Path, Path] = {}


def _history_store(root: Path) -> Path:
    """The demo's earlier weeks, seeded once per benchmark run and shared by render and e2e."""
    if root not in _SEEDED:
        from benchmarks.history import seed

        _SEEDED[root] = seed(root / "history")
    return _SEEDED[root]


def parse_section(workdir: Path) -> tuple[list[Row], dict]:
    from benchmarks import parse
    from benchmarks.common import bench_week, synthetic_profiles, write_registry
    from devtools.simulators.world import World

    week = bench_week()
    registries = {f"{n} customers": write_registry(World(week, profiles=synthetic_profiles(n)),
                                                   workdir / f"registry-{n}.yaml") for n in (12, 500)}
    raw = parse.measure(workdir, registries, PARSE_REPEATS)
    med = raw["median_s"]
    ex, r12, r500 = med["example"], med["12 customers"], med["500 customers"]
    ref = f"{secs(ex)} example_python_operator.py"
    rows = [
        Row("DAG parse of dags/, 12 customers registered", secs(r12), ref, times(r12 / ex), f"≤ {PARSE_TARGET}x",
            yes(r12 / ex <= PARSE_TARGET)),
        Row("DAG parse of dags/, 500 customers registered", secs(r500), ref, times(r500 / ex),
            f"≤ {PARSE_TARGET}x", yes(r500 / ex <= PARSE_TARGET)),
        Row("DAG parse growth, 500 vs 12 customers", secs(r500), f"{secs(r12)} with 12", times(r500 / r12),
            f"no growth (≤ {GROWTH_TARGET:.2f}x)", yes(r500 / r12 <= GROWTH_TARGET)),
    ]
    return rows, raw


def render_section(workdir: Path) -> tuple[list[Row], dict]:
    from benchmarks import render

    raw = render.measure(workdir, RENDER_REPEATS, _history_store(workdir.parent))
    ref_rss = raw["reference"]["peak_rss_mb"]
    rows = []
    for kind in ("typical", "largest", "largest_week"):  # largest_week: 10k tickets and changes, 2,000 incidents
        r = raw[kind]
        ref = f"{secs(r['reference_median_s'])} fixed 1-page HTML"
        label = (f"Render {kind.replace('_', ' ')} report ({r['code']}: {r['records']:,} records, {r['rows']} "
                 f"table rows, {r['pages']} pages, {r['history_weeks'] + 1}-week trends)")
        rows += [
            Row(f"{label}, median of {RENDER_REPEATS}", secs(r["median_s"]), ref,
                times(r["median_s"] / r["reference_median_s"]), f"≤ {RENDER_TARGET_S:.0f} s",
                yes(r["median_s"] <= RENDER_TARGET_S)),
            Row(f"Render {kind.replace('_', ' ')} report, p95 of {RENDER_REPEATS}", secs(r["p95_s"]), ref,
                times(r["p95_s"] / r["reference_median_s"]), "report only", "n/a"),
            Row(f"Render {kind.replace('_', ' ')} report, peak RSS ({RENDER_REPEATS + 1} renders in one process)",
                mb(r["peak_rss_mb"]), f"{mb(ref_rss)} WeasyPrint, fixed HTML", times(r["peak_rss_mb"] / ref_rss),
                f"≤ {RSS_TARGET_MB} MB", yes(r["peak_rss_mb"] <= RSS_TARGET_MB)),
        ]
    return rows, raw


def e2e_section(workdir: Path) -> tuple[list[Row], dict]:
    from benchmarks import e2e

    raw = e2e.measure(workdir, _history_store(workdir.parent))
    dag, floor = raw["dag"], raw["floor"]
    ok = dag["state"] == "success" and dag["delivered"] == dag["customers"] == floor["delivered"]
    rows = [Row(f"End to end, {dag['customers']} demo customers: dag.test, approvals given, local delivery"
                + ("" if ok else f" (RUN INCOMPLETE: {dag['state']}, {dag['delivered']} delivered)"),
                secs(dag["seconds"]), f"{secs(floor['seconds'])} floor: same calls, plain loop (mean of 2)",
                times(dag["seconds"] / floor["seconds"]), f"≤ {E2E_TARGET:.0f}x",
                yes(ok and dag["seconds"] / floor["seconds"] <= E2E_TARGET))]
    if "api_start_s" in dag:  # started before the clock, as a deployment's api-server is up before the run
        with_api = dag["seconds"] + dag["api_start_s"]
        rows.append(Row("End to end with the Execution API's start-up (dag.test builds it in-process on the "
                        f"first request; {secs(dag['api_start_s'])} here)", secs(with_api),
                        f"{secs(floor['seconds'])} floor", times(with_api / floor["seconds"]),
                        "report only", "n/a"))
    noop = raw.get("noop")
    if noop:
        rows.append(Row(f"End to end, Airflow alone: the same DAG shape with no-op tasks under dag.test "
                        f"({noop['task_instances']} task instances)", secs(noop["seconds"]),
                        f"{secs(floor['seconds'])} floor", times(noop["seconds"] / floor["seconds"]),
                        "report only", "n/a"))
        ours = dag["seconds"] - noop["seconds"]
        rows.append(Row("End to end less Airflow's no-op cost (what the project's tasks cost under Airflow)",
                        secs(ours), f"{secs(floor['seconds'])} floor", times(ours / floor["seconds"]),
                        "report only", "n/a"))
    return rows, raw


def scale_section(workdir: Path) -> tuple[list[Row], dict]:
    from benchmarks import scale

    raw = scale.measure(workdir, SCALE_SIZES)
    base = raw[12]
    compared = {n: scale.compare(raw[n], base) for n in raw}
    rows = []
    for n in (100, 500):
        c = compared[n]
        rows.append(Row(f"Per-customer cost, {n} customers (pipeline CPU; {c['shapes']} customers sampled)",
                        secs(c["cpu_per_customer_s"]), f"{secs(c['base_cpu_per_customer_s'])} with 12",
                        times(c["cpu_ratio"]), f"flat: ≤ {GROWTH_TARGET:.2f}x", yes(c["cpu_ratio"] <= GROWTH_TARGET)))
    for n in raw:
        c = compared[n]
        at, alone = sum(c["requests"].values()), sum(c["alone"].values())
        rows.append(Row(f"Requests per customer, {n} customers (all sources)", f"{at:.1f}",
                        f"{alone:.1f} same customer alone", times(at / alone), "pages needed + constant (1.00x)",
                        yes(at <= alone + 0.01)))
    for n in (100, 500):
        x, x12 = raw[n].get("xcom"), raw[12].get("xcom")
        if x and x12:
            pulled, pulled12 = x["mapped_list_bytes"] + x["item_bytes"], x12["mapped_list_bytes"] + x12["item_bytes"]
            rows.append(Row(f"XCom a customer task pulls, {n} customers (the codes the groups map over + its own "
                            f"item; all items would be {x['all_items_bytes'] / 1024:.0f} KB)",
                            f"{pulled / 1024:.1f} KB", f"{pulled12 / 1024:.1f} KB with 12", times(pulled / pulled12),
                            "report only", "n/a"))
    return rows, {"raw": raw, "compared": compared}


def memory_rows(results: dict) -> list[Row]:
    rows = []
    render_raw = results.get("render")
    if render_raw:
        t, ref = render_raw["task"], render_raw["reference"]["peak_rss_mb"]
        rows.append(Row(f"Peak RSS, one task (render task body for {t['code']}, fresh process)",
                        mb(t["peak_rss_mb"]), f"{mb(ref)} WeasyPrint, fixed HTML", times(t["peak_rss_mb"] / ref),
                        f"≤ {RSS_TARGET_MB} MB", yes(t["peak_rss_mb"] <= RSS_TARGET_MB)))
    e2e_raw = results.get("e2e")
    if e2e_raw:
        d, f = e2e_raw["dag"]["peak_rss_mb"], e2e_raw["floor"]["peak_rss_mb"]
        rows.append(Row("Peak RSS, whole run (the dag.test process, 12 customers)", mb(d),
                        f"{mb(f)} floor process", times(d / f), "report only", "n/a"))
    return rows


# ---- details and notes ------------------------------------------------------------------------
def details(results: dict) -> list[str]:
    out = []
    sc = results.get("scale")
    if sc:
        sizes = list(sc["compared"])
        names = sorted({s for c in sc["compared"].values() for s in c["requests"]})
        header = ("source: requests per customer", *(f"{n} customers (alone)" for n in sizes))
        rows = [(s, *(f"{sc['compared'][n]['requests'].get(s, 0):.1f} ({sc['compared'][n]['alone'].get(s, 0):.1f})"
                      for n in sizes)) for s in names]
        out += ["Requests each source received per customer, mean over the sampled customers; in brackets "
                "the same customers alone (their own pages plus fixed calls):", "",
                markdown_table(header, rows), ""]
        header = ("per customer", *(f"{n} customers" for n in sizes))
        raw = sc["raw"]
        phase_rows = [(f"pipeline CPU: {ph}", *(secs(raw[n]["phase_cpu_s"][ph]) for n in sizes))
                      for ph in ("extract", "reconcile", "render")]
        phase_rows += [
            ("of which garbage collection", *(secs(raw[n].get("gc_cpu_s", 0)) for n in sizes)),
            ("registry load (CPU, once)", *(secs(raw[n]["registry_load_cpu_s"]) for n in sizes)),
            ("wall", *(secs(sc["compared"][n]["wall_per_customer_s"]) for n in sizes)),
            ("of which simulators answering", *(secs(sc["compared"][n]["sim_per_customer_s"]) for n in sizes)),
            ("child peak RSS", *(mb(raw[n]["peak_rss_mb"]) for n in sizes)),
        ]
        out += ["Where the per-customer time goes (means over the sampled customers):", "",
                markdown_table(header, phase_rows), ""]
        shared = {n: raw[n].get("shared_listing_requests") or {} for n in sizes}
        if any(shared.values()):
            text = "; ".join(f"{n} customers: " + (", ".join(f"{s} {c} ({c / n:.2f} per customer)"
                                                         for s, c in sorted(v.items())) or "none")
                             for n, v in shared.items())
            out += ["Listings shared by the run (fetched once per run by the first customer of its backup "
                    f"system, before the sample, and not in the per-customer figures above): {text}.", ""]
    e2e_raw = results.get("e2e")
    if e2e_raw:
        d, f = e2e_raw["dag"], e2e_raw["floor"]
        phases = ", ".join(f"{k} {secs(v)}" for k, v in f["phases_s"].items())
        floors = " and ".join(secs(x["seconds"]) for x in e2e_raw["floors"])
        out += [f"End to end: dag.test {secs(d['seconds'])} wall / {secs(d['cpu_s'])} CPU for "
                f"{d['task_instances']} task instances; floor (before and after: {floors}) "
                f"{secs(f['seconds'])} wall / {secs(f['cpu_s'])} CPU "
                f"(CPU ratio {times(d['cpu_s'] / f['cpu_s'])}). Floor by phase: {phases}. Requests to the "
                f"sources: DAG {d['requests']}, floor {f['requests']}. `airflow db migrate` beforehand: "
                f"{secs(e2e_raw['db_migrate_s'])} (not counted). The Execution API, started before the clock "
                f"in each DAG child: {secs(d.get('api_start_s', 0))} (DAG), "
                f"{secs(e2e_raw.get('noop', {}).get('api_start_s', 0))} (no-op DAG).", ""]
        if "phases_s" in d:
            noop = e2e_raw.get("noop", {}).get("phases_s", {})
            header = ("phase", "floor (plain loop)", "DAG: task instances, start to end", "no-op DAG: the same")
            rows = [(k, secs(f["phases_s"].get(k, 0)), secs(d["phases_s"].get(k, 0)), secs(noop.get(k, 0)))
                    for k in (*f["phases_s"], "other") if k in f["phases_s"] or k in d["phases_s"]]
            rows.append(("between tasks (dag.test's loop)", "", secs(d["seconds"] - sum(d["phases_s"].values())),
                         secs(e2e_raw["noop"]["seconds"] - sum(noop.values())) if noop else ""))
            out += ["End to end by phase (task durations as the grid shows them; \"other\": plan, the 09:00 "
                    "sensor, the missed-approvals post):", "", markdown_table(header, rows), ""]
    r = results.get("render")
    if r:
        out += [f"Render: CPU median typical {secs(r['typical']['cpu_median_s'])}, largest "
                f"{secs(r['largest']['cpu_median_s'])}; first render in a fresh process (imports, fonts) "
                f"typical {secs(r['typical']['cold_s'])}, largest {secs(r['largest']['cold_s'])}; the render "
                f"task body in a fresh process {secs(r['task']['seconds'])}; report rows by customer "
                f"{r['prepare']['rows']}.", ""]
    p = results.get("parse")
    if p:
        samples = "; ".join(f"{k}: " + ", ".join(f"{v * 1000:.0f}" for v in vals)
                            for k, vals in p["samples_s"].items())
        out += [f"Parse samples (ms): {samples}.", ""]
    return out


NOTES = [
    "Every figure is measured against its reference in the same run, on this machine, in child processes "
    "of one `python -m benchmarks`; peak RSS is each child's own (`wait4` ru_maxrss).",
    "Parse: each sample is a fresh process that imports the dag-processor, pre-imports the file's `airflow.*` "
    f"imports as the DagFileProcessorManager does (not timed), then times `_parse_file` (DagBag of the one file + "
    f"serialization), as the processor's child does every cycle; median of {PARSE_REPEATS}, interleaved. The "
    "registry is set by `AIRFLOW_VAR_MSP_REPORTS_REGISTRY`.",
    "Render: `render_report` on stored reconciled data: the demo week on top of 7 seeded earlier weeks (the "
    "baseline and the trend charts, as the demo seeds them); "
    f"{RENDER_REPEATS} timed renders after one untimed, each after one render of the fixed reference HTML.",
    "End to end: `dag.test` runs every task instance one after another in one process (no executor, no "
    "scheduler loop, no task process start-up), so this is the orchestrator's in-process overhead per task, not "
    "a deployment's wall time. Both children start the simulators and the SMTP sink on a copy of the seeded "
    "earlier weeks before the clock starts. The floor makes every call the DAG's tasks make: extract x 5, "
    "reconcile, render, approval, deliver x 3 per customer, then the roll-up; its two runs bracket the DAG run.",
    "Scale: synthetic customers C001.. shaped like the 12 demo customers; at each size one customer per shape is "
    "run (every other shape at 500, to keep the run short), spread over the registry, and compared with the same "
    "shapes at 12 (run before and after the larger sizes, averaged, so drift during the run hits the reference "
    "too). Per-customer cost is the CPU of the pipeline's thread (`thread_time`): the in-process "
    "simulators scan their whole world per request, which a real source does not, so their time is shown apart.",
    "Bytecode: `scripts/bench.sh` caches bytecode under `var/bench/pycache` (PYTHONPYCACHEPREFIX), as a deployed "
    "image ships it; one untimed round warms it.",
]


def render_output(rows: list[Row], results: dict, info: dict, elapsed: float) -> str:
    header = [f"# Benchmarks — {info['date']}", "",
              f"Machine: `{info['uname']}`", f"CPU: {info['cpu']}; Python {info['python']}; "
              f"load average at start {info['load_start']}, at end {info['load']}; "
              f"benchmark wall time {elapsed / 60:.1f} min.", ""]
    body = [main_table(rows), ""]
    missed = [r.figure for r in rows if r.met == "**no**"]
    errors = [r for r in rows if r.met == "error"]
    body.append(f"Targets met: {sum(r.met == 'yes' for r in rows)}; missed: {len(missed)}; "
                f"report only: {sum(r.met == 'n/a' for r in rows)}; errors: {len(errors)}.")
    body.append("")
    return "\n".join(header + body + details(results) + ["Notes:", ""] + [f"- {n}" for n in NOTES]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--out", default=str(PROJECT_ROOT / "var" / "bench" / "latest.md"))
    parser.add_argument("--keep", action="store_true", help="keep the work folder (stores, logs)")
    args = parser.parse_args(argv)
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")

    info = machine()
    info["load_start"] = info["load"]
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="msp-bench-"))
    print(f"benchmarks: work folder {workdir}", file=sys.stderr)
    run_child("benchmarks.warm", [], env=airflow_env(workdir / "warm"), workdir=workdir, name="warm")
    builders = {"parse": parse_section, "render": render_section, "e2e": e2e_section, "scale": scale_section}
    rows: list[Row] = []
    results: dict = {}
    for section in wanted:
        t0 = time.perf_counter()
        print(f"benchmarks: {section} …", file=sys.stderr, flush=True)
        try:
            section_rows, results[section] = builders[section](workdir / section)
            rows += section_rows
        except (ChildFailed, Exception) as exc:  # noqa: BLE001 - one failed section must not hide the others
            traceback.print_exc()
            rows.append(_error_row(section, exc))
        print(f"benchmarks: {section} done in {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    rows += memory_rows(results)
    info["load"] = machine()["load"]
    text = render_output(rows, results, info, time.perf_counter() - started)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    (out.with_suffix(".json")).write_text(json.dumps(results, indent=1, default=str))
    print(f"written to {out}", file=sys.stderr)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if any(r.met == "error" for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
