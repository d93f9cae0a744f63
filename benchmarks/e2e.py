"""End to end: the 12 demo customers through the real DAG (``dag.test``: approvals given, local
SMTP, Teams simulator, local archive) against the floor: the same pipeline calls in a plain loop.

Both children start the same things in their own process, as ``tests/test_dag_e2e.py`` does: the
simulators, the SMTP sink and the connections (environment), on a copy of the seeded earlier
weeks (baseline and trend charts, as in the demo). Only then does the clock start.

- ``dag <home>``: approvals as Airflow Variables, the Execution API started (below), then
  ``dag.test()``. ``dag.test`` runs every
  task instance one after another in this one process; the timing includes what the
  orchestrator adds per task (task instance rows, XCom, rendering templates, sensor poke).
- ``floor <home>``: per customer ``extract`` x 5, ``build_snapshot``, ``render``,
  ``check_approval`` (the approval recorded), ``deliver`` x 3; then ``rollup``. The time of
  extract + reconcile + render alone is reported as well.

``dag.test`` serves the Execution API (what every task talks to) from an app inside this process,
built on the first task's first request: 5 s here, mostly Cadwyn generating its versioned routes.
A deployment's api-server does that once when it starts, not per run, so both DAG children start
it before the clock (as they start the simulators) and report its start-up apart (``api_start_s``).

The parent runs ``airflow db migrate`` for the DAG child first (not timed: a deployment's DB exists).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

APPROVAL = json.dumps({"decision": "approve", "by": "benchmark"})


def _services(home: Path):
    from benchmarks.common import bench_week
    from devtools.demo import DemoServices

    week = bench_week()
    os.environ["MSP_REPORTS_HOME"] = str(home)
    services = DemoServices(week, home)
    services.__enter__()
    os.environ.update(services.connection_env())
    return week, services


def _delivered(home: Path, services, week: dt.date) -> int:
    from msp_reports.pipeline import customer_status
    from msp_reports.store import ReportStore

    store = ReportStore(str(home / "store"))
    return sum(customer_status(store, c, week)["state"] == "delivered" for c in services.registry.customers)


def freeze_startup_heap() -> None:
    """What Airflow's executors do before they fork task processes (LocalExecutor workers, Celery's
    pool, the dag-processor: ``gc.freeze()``): the start-up heap moves out of the collector's
    reach, so a full collection in a task walks the task's objects, not every imported module.
    dag.test runs the tasks in its own process and does not. Done in every child (floor, DAG,
    no-op DAG) just before its clock starts; the full collections that free the renders' garbage
    remain in each (docs/benchmarks.md)."""
    import gc

    gc.collect()
    gc.freeze()


def start_execution_api() -> float:
    """Build the in-process Execution API that ``dag.test`` will use (one per process, cached by
    Airflow) and have it answer one request; the seconds it took."""
    from airflow.sdk.execution_time.supervisor import InProcessTestSupervisor

    started = time.perf_counter()
    InProcessTestSupervisor._api_client().get("health").raise_for_status()
    return time.perf_counter() - started


def task_phases(tis) -> dict[str, float]:
    """Task instance durations (start to end, as the grid shows them) summed by the floor's phases."""
    names = {"reconcile": "reconcile", "render": "render", "wait_for_approval": "approve", "rollup": "rollup",
             "deliver_email": "deliver", "post_to_teams": "deliver", "archive": "deliver"}
    out: dict[str, float] = {}
    for ti in tis:
        name = ti.task_id.rsplit(".", 1)[-1]
        phase = "extract" if name.startswith("extract_") else names.get(name, "other")
        out[phase] = out.get(phase, 0.0) + (ti.duration or 0.0)
    return out


def dag_child(home: Path) -> dict:
    from benchmarks.common import DAGS, MSP_TIMEZONE

    week, services = _services(home)
    try:
        from airflow.dag_processing.dagbag import DagBag
        from airflow.models import Variable
        from airflow.settings import configure_orm

        from msp_reports.approval import variable_key

        configure_orm()
        for c in services.registry.customers:
            Variable.set(variable_key(c.code, week), APPROVAL)
        bag = DagBag(str(DAGS))
        if "weekly_executive_report" not in bag.dags:
            raise SystemExit(f"dags/ did not parse: {bag.import_errors}")
        dag = bag.dags["weekly_executive_report"]
        run_at = dt.datetime.combine(week + dt.timedelta(days=7), dt.time(6, 0), tzinfo=ZoneInfo(MSP_TIMEZONE))
        api_start = start_execution_api()
        requests_before = dict(services.sim.state.requests)
        freeze_startup_heap()
        started, cpu = time.perf_counter(), time.process_time()
        run = dag.test(logical_date=run_at, run_after=run_at)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        tis = run.get_task_instances()
        return {"seconds": seconds, "cpu_s": cpu, "api_start_s": api_start, "state": str(run.state),
                "task_instances": len(tis), "phases_s": task_phases(tis),
                "delivered": _delivered(home, services, week), "customers": len(services.registry.customers),
                "requests": _diff(services.sim.state.requests, requests_before)}
    finally:
        services.__exit__(None, None, None)


def floor_child(home: Path) -> dict:
    from msp_reports import pipeline
    from msp_reports.settings import Settings

    week, services = _services(home)
    try:
        settings = Settings.load()
        phases = {"extract": 0.0, "reconcile": 0.0, "render": 0.0, "approve": 0.0, "deliver": 0.0, "rollup": 0.0}
        requests_before = dict(services.sim.state.requests)
        freeze_startup_heap()
        started, cpu = time.perf_counter(), time.process_time()
        items = pipeline.plan(settings, dt.datetime.combine(week + dt.timedelta(days=7), dt.time(6, 0),
                                                            tzinfo=dt.timezone.utc), {})
        for item in items:
            t0 = time.perf_counter()
            for domain in pipeline.DOMAINS:
                pipeline.extract(settings, item, domain)
            t1 = time.perf_counter()
            pipeline.build_snapshot(settings, item)
            t2 = time.perf_counter()
            pipeline.render(settings, item)
            t3 = time.perf_counter()
            state, _, _ = pipeline.check_approval(settings, item, APPROVAL)
            if state != "approved":
                raise RuntimeError(f"{item['customer']}: approval state {state!r}")
            t4 = time.perf_counter()
            for channel in pipeline.CHANNELS:
                pipeline.deliver(settings, item, channel)
            t5 = time.perf_counter()
            for name, a, b in (("extract", t0, t1), ("reconcile", t1, t2), ("render", t2, t3),
                               ("approve", t3, t4), ("deliver", t4, t5)):
                phases[name] += b - a
        t6 = time.perf_counter()
        pipeline.rollup(settings, items)
        phases["rollup"] = time.perf_counter() - t6
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        return {"seconds": seconds, "cpu_s": cpu, "phases_s": phases, "customers": len(items),
                "delivered": _delivered(home, services, week),
                "requests": _diff(services.sim.state.requests, requests_before)}
    finally:
        services.__exit__(None, None, None)


# Airflow's own cost for this DAG's shape: the same task groups, mapped over as many customers,
# with tasks that do nothing. What dag.test adds per task instance whatever the task does.
NOOP_DAG = '''
import datetime as dt
from airflow.sdk.definitions.dag import dag
from airflow.sdk.definitions.decorators import task, task_group

@task
def plan_customers():
    return [{{"customer": f"C{{i:03d}}"}} for i in range({customers})]

@task(map_index_template="{{{{ task.task_id }}}}")
def noop(item, what=None):
    return {{"ok": True}}

@task_group
def customer_report(item):
    extracts = [noop.override(task_id=f"extract_{{d}}")(item, d) for d in {domains!r}]
    snapshot = noop.override(task_id="reconcile")(item)
    extracts >> snapshot
    approved = noop.override(task_id="wait_for_approval")(item)
    snapshot >> noop.override(task_id="render")(item) >> approved
    approved >> [noop.override(task_id=f"deliver_{{c}}")(item, c) for c in {channels!r}]

@dag(schedule=None, start_date=dt.datetime(2026, 1, 5), catchup=False)
def noop_weekly_report():
    items = plan_customers()
    customer_report.expand(item=items) >> noop.override(task_id="rollup")(items)
    noop.override(task_id="wait_for_send_time")(items) >> noop.override(task_id="post_missed_approvals")(items)

noop_weekly_report()
'''


def noop_child(home: Path, customers: int) -> dict:
    """The same DAG shape with no-op tasks, through dag.test: the orchestrator's share alone."""
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.settings import configure_orm

    from msp_reports import pipeline

    configure_orm()
    folder = home / "noop-dags"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "noop_weekly_report.py").write_text(NOOP_DAG.format(
        customers=customers, domains=tuple(pipeline.DOMAINS), channels=tuple(pipeline.CHANNELS)))
    bag = DagBag(str(folder))
    if "noop_weekly_report" not in bag.dags:
        raise SystemExit(f"the no-op DAG did not parse: {bag.import_errors}")
    sync_bag_to_db(bag, "dags-folder", None)  # the bundle every migrated database has
    dag = bag.dags["noop_weekly_report"]
    api_start = start_execution_api()
    freeze_startup_heap()
    started, cpu = time.perf_counter(), time.process_time()
    run = dag.test()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    tis = run.get_task_instances()
    return {"seconds": seconds, "cpu_s": cpu, "api_start_s": api_start, "state": str(run.state),
            "task_instances": len(tis), "phases_s": task_phases(tis)}


def _diff(after, before) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in sorted(after) if after[k] - before.get(k, 0)}


def main(argv: list[str]) -> None:
    from benchmarks.common import write_result

    command, home = argv[0], Path(argv[1])
    if command == "noop":
        write_result(noop_child(home, int(argv[2])))
    else:
        write_result(dag_child(home) if command == "dag" else floor_child(home))


# ---- driver -----------------------------------------------------------------------------------
def measure(workdir: Path, history_store: Path) -> dict:
    """The floor before and after the DAG run (their mean is the reference), so drift on a shared
    machine during the DAG run shows up in the floor as well."""
    from benchmarks.common import PLUGINS, PROJECT_ROOT, airflow_env, run_child
    from benchmarks.history import copy_into

    out: dict = {}
    for name in ("floor-before", "dag", "floor-after"):
        copy_into(history_store, workdir / name / "msp")
    dag_env = airflow_env(workdir / "dag" / "airflow", workdir / "dag" / "msp")
    (workdir / "dag" / "airflow").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, cwd=PROJECT_ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, **dag_env, "PYTHONPATH": str(PLUGINS)})
    out["db_migrate_s"] = time.perf_counter() - started

    def floor(name: str) -> dict:
        env = airflow_env(workdir / name / "airflow", workdir / name / "msp")
        child = run_child("benchmarks.e2e", ["floor", str(workdir / name / "msp")], env=env, workdir=workdir,
                          name=f"e2e-{name}")
        return {**child.result, "peak_rss_mb": child.peak_rss_mb, "wall_s": child.wall_s}

    before = floor("floor-before")
    dag = run_child("benchmarks.e2e", ["dag", str(workdir / "dag" / "msp")], env=dag_env, workdir=workdir,
                    name="e2e-dag", timeout=1200)
    after = floor("floor-after")
    noop = run_child("benchmarks.e2e", ["noop", str(workdir / "dag" / "msp"), str(dag.result["customers"])],
                     env=dag_env, workdir=workdir, name="e2e-noop", timeout=1200)
    out["noop"] = {**noop.result, "wall_s": noop.wall_s}
    out["floors"] = [before, after]
    out["floor"] = {
        "seconds": (before["seconds"] + after["seconds"]) / 2,
        "cpu_s": (before["cpu_s"] + after["cpu_s"]) / 2,
        "phases_s": {k: (before["phases_s"][k] + after["phases_s"][k]) / 2 for k in before["phases_s"]},
        "delivered": min(before["delivered"], after["delivered"]),
        "requests": before["requests"],
        "peak_rss_mb": max(before["peak_rss_mb"], after["peak_rss_mb"]),
    }
    out["dag"] = {**dag.result, "peak_rss_mb": dag.peak_rss_mb, "wall_s": dag.wall_s}
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
