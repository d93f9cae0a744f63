"""Waiting for approval at scale, on the Celery stack: what N customers cost while they wait.

``python -m benchmarks.waiting --project <checkout> --customers 100 --minutes 10``
(``bash scripts/bench.sh waiting`` runs the short variant: 20 customers, 2 minutes).

The stack is the one ``tests/integration/test_celery_stack.py`` starts (its helpers are imported,
not copied): a fresh PostgreSQL database and an empty Redis db number (both dropped afterwards),
``airflow api-server``, ``scheduler``, ``dag-processor``, ``triggerer`` and one ``celery worker``
(concurrency 4) as separate process groups, with the CeleryExecutor. The DAG, the plugins and the
``msp_reports`` package the components import are those of ``--project`` (a checkout of this
project at any revision: main's reschedule sensor is "before", the hitl branch "after"); the
harness itself, the simulators and the seeding come from the tree this file is in.

How the run reaches the waiting state cheaply, and what that leaves out:

- the registry has N synthetic customers (C001.., shaped like the 12 demo customers, each with
  its own identities in every system, email by SMTP to a local sink, Teams by workflow to the
  Teams simulator, a local archive folder);
- the store is seeded before the run: the 12 demo customers are extracted (against the
  simulators), reconciled and rendered once with the pipeline's own functions, and customer
  ``i`` gets a copy of demo customer ``i % 12``'s rendered week (PDF, Markdown, messages,
  ``render.json`` with their hashes): real bytes of real size, but the content names the demo
  customer, not C001;
- the pools of the extract and render tasks get 0 slots, so no extract, reconcile or render ever
  runs; as soon as the scheduler has expanded them, the harness sets those task instances (and
  reconcile's) to ``success`` in the database (one UPDATE). ``plan_customers``, everything from the
  wait on, the run-level sensors and every delivery run as deployed.

Then, measured over a window of ``--minutes`` that starts once every customer's wait task
(``--wait-task``) has been seen waiting (up_for_reschedule, deferred or awaiting_input):

- task executions: the worker's "Executing workload in Celery" lines in the window (every task
  process the worker started, whatever the task), and the ``task_reschedule`` rows written;
- CPU seconds of each component's process tree (utime+stime of every live process plus what it
  reaped from dead children, ``/proc/<pid>/stat``), delta over the window;
- rows written in the run's database (``pg_stat_database`` tup_inserted + tup_updated +
  tup_deleted, delta; the busiest tables from ``pg_stat_user_tables``). PostgreSQL publishes a
  backend's counts at most every second and an idle one's within about 10 s, so the edges of
  the window are that fuzzy;
- then ``--approve`` customers (spread over the registry) are approved through
  ``POST /api/v2/variables`` at once, and for each the time from that call to its first channel's
  ledger receipt ``sent_at`` (the first delivery).

Figures are printed (and written as JSON to ``--out``); nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_ROOT = Path(__file__).resolve().parents[1]
DAG_ID = "weekly_executive_report"
GROUP = "customer_report"
PRE_WAIT = [f"{GROUP}.extract_{d}" for d in ("uptime", "tickets", "backups", "security", "sites")] + \
    [f"{GROUP}.reconcile", f"{GROUP}.render"]
WAITING_STATES = ("up_for_reschedule", "deferred", "awaiting_input")
EXECUTING_LINE = b"Executing workload in Celery"
COMPONENTS = ("scheduler", "worker", "api-server", "dag-processor", "triggerer")
SEED_FILES_SKIPPED = {"run.json", "ledger", "approvals", "teams_tab.json"}


# ---- the process trees' CPU -------------------------------------------------------------------
def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds incl. reaped children) of one process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # after "pid (comm) "
    ticks = os.sysconf("SC_CLK_TCK")
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return int(fields[1]), (utime + stime + cutime + cstime) / ticks


def tree_cpu(root: int) -> float:
    """CPU seconds of ``root`` and every live descendant (dead ones are in their reaper's cutime)."""
    procs = {}
    for p in Path("/proc").glob("[0-9]*"):
        if (s := _stat(int(p.name))) is not None:
            procs[int(p.name)] = s
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in procs:
            total += procs[pid][1]
            todo += children.get(pid, [])
    return total


# ---- the database -----------------------------------------------------------------------------
class Db:
    def __init__(self, user: str, name: str) -> None:
        import psycopg2

        from tests.integration.test_celery_stack import PG_HOST, PG_PORT

        self.name = name
        self.conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=user, dbname=name)
        self.conn.autocommit = True

    def rows(self, sql: str, *args) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else []

    def written(self) -> dict[str, Any]:
        self.rows("SELECT pg_stat_clear_snapshot()")
        (ins, upd, dele, commits), = self.rows(
            "SELECT tup_inserted, tup_updated, tup_deleted, xact_commit FROM pg_stat_database WHERE datname = %s",
            self.name)
        tables = {r[0]: r[1] + r[2] + r[3] for r in self.rows(
            "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables")}
        return {"inserted": ins, "updated": upd, "deleted": dele, "commits": commits, "tables": tables}

    def close(self) -> None:
        self.conn.close()


def _delta(after: dict, before: dict) -> dict:
    tables = {t: n - before["tables"].get(t, 0) for t, n in after["tables"].items()}
    return {**{k: after[k] - before[k] for k in ("inserted", "updated", "deleted", "commits")},
            "rows": sum(after[k] - before[k] for k in ("inserted", "updated", "deleted")),
            "tables": dict(sorted(((t, n) for t, n in tables.items() if n), key=lambda x: -x[1])[:8])}


# ---- seeding ----------------------------------------------------------------------------------
def bench_registry(week: dt.date, n: int, path: Path) -> tuple[Path, list[str]]:
    """N synthetic customers; every channel local or simulated (SMTP sink, Teams simulator, folder)."""
    import yaml

    from benchmarks.common import registry_document, synthetic_profiles
    from devtools.simulators.world import World

    doc = registry_document(World(week, profiles=synthetic_profiles(n)))
    for entry in doc["customers"]:
        entry["delivery"] = {"email": {"via": "smtp", "conn_id": "smtp_default"},
                             "teams": {"via": "workflow", "conn_id": f"teams_{entry['code'].lower()}"},
                             "archive": {"via": "local", "folder": f"{entry['code']}/Reports/Weekly"}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return path, [c["code"] for c in doc["customers"]]


def seed_demo_week(week: dt.date, home: Path, env: dict[str, str]) -> Path:
    """The 12 demo customers' week rendered with the pipeline's own functions (a child process, so
    the connections and MSP_REPORTS_HOME it needs stay out of this one); their store."""
    code = ("import datetime as dt, sys\n"
            "from msp_reports import pipeline\nfrom msp_reports.settings import Settings\n"
            "s = Settings.load()\nweek = dt.date.fromisoformat(sys.argv[1])\n"
            "at = dt.datetime.combine(week + dt.timedelta(days=7), dt.time(6), tzinfo=dt.timezone.utc)\n"
            "for item in pipeline.plan(s, at, {'week_of': week.isoformat()}):\n"
            "    for d in pipeline.DOMAINS:\n"
            "        try: pipeline.extract(s, item, d)\n"
            "        except Exception as e: print(item['customer'], d, e)\n"
            "    pipeline.build_snapshot(s, item); pipeline.render(s, item)\n")
    (home.parent / "seed-airflow").mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", code, week.isoformat()], env={**env, "MSP_REPORTS_HOME": str(home)},
                   check=True, cwd=BENCH_ROOT)
    return home / "store"


def copy_weeks(seed_store: Path, store: Path, week: dt.date, codes: list[str]) -> None:
    from devtools.simulators.world import PROFILES

    for i, code in enumerate(codes):
        src = seed_store / PROFILES[i % len(PROFILES)].code / week.isoformat()
        shutil.copytree(src, store / code / week.isoformat(),
                        ignore=lambda d, names: [n for n in names if n in SEED_FILES_SKIPPED and Path(d) == src])


# ---- the run ----------------------------------------------------------------------------------
def project_env(env: dict[str, str], project: Path) -> dict[str, str]:
    """The stack's environment with the DAG, plugins and package of ``project``."""
    return {**env, "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(project / "plugins"),
            "PYTHONPATH": os.pathsep.join([str(project / "plugins"), str(project)])}


def zero_slot_pools(stack, project: Path) -> None:
    pools = json.loads((project / "include" / "pools.json").read_text())
    for name, spec in pools.items():
        slots = spec["slots"] if name == "msp_delivery" else 0
        stack.airflow("pools", "set", name, str(slots), "benchmark: 0 slots, its tasks are marked done")


def mark_pre_wait_done(db: Db, run_id: str, n: int) -> bool:
    """Once the scheduler has expanded every pre-wait task for all N customers, set them to success."""
    counts = dict(db.rows("SELECT task_id, count(*) FROM task_instance WHERE dag_id = %s AND run_id = %s "
                          "AND map_index >= 0 AND task_id = ANY(%s) GROUP BY task_id", DAG_ID, run_id, PRE_WAIT))
    if any(counts.get(t, 0) < n for t in PRE_WAIT):
        return False
    db.rows("UPDATE task_instance SET state = 'success', start_date = now(), end_date = now(), duration = 0 "
            "WHERE dag_id = %s AND run_id = %s AND task_id = ANY(%s) AND map_index >= 0 "
            "AND (state IS NULL OR state IN ('scheduled', 'none'))", DAG_ID, run_id, PRE_WAIT)
    left = db.rows("SELECT count(*) FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = ANY(%s) "
                   "AND state IS DISTINCT FROM 'success'", DAG_ID, run_id, PRE_WAIT)[0][0]
    if left:
        raise RuntimeError(f"{left} pre-wait task instances are neither waiting for a slot nor done "
                           "(did one run?)")
    return True


def seen_waiting(db: Db, run_id: str, wait_task: str, seen: set[int]) -> set[int]:
    rows = db.rows("SELECT ti.map_index FROM task_instance ti WHERE ti.dag_id = %s AND ti.run_id = %s "
                   "AND ti.task_id = %s AND ti.map_index >= 0 AND (ti.state = ANY(%s) "
                   "OR EXISTS (SELECT 1 FROM task_reschedule tr WHERE tr.ti_id = ti.id))",
                   DAG_ID, run_id, wait_task, list(WAITING_STATES))
    return seen | {r[0] for r in rows}


def states(db: Db, run_id: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for task, state, count in db.rows("SELECT task_id, coalesce(state, 'none'), count(*) FROM task_instance "
                                      "WHERE dag_id = %s AND run_id = %s GROUP BY 1, 2", DAG_ID, run_id):
        out.setdefault(task, {})[state] = count
    return out


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot (``/proc/stat``), every process."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:8]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


def approved_states(db: Db, run_id: str, indexes: list[int]) -> dict[str, dict[str, str]]:
    """Where each approved customer's tasks from the wait on stand (map index -> task -> state)."""
    out: dict[str, dict[str, str]] = {}
    for index, task, state in db.rows(
            "SELECT map_index, task_id, coalesce(state, 'none') FROM task_instance WHERE dag_id = %s AND run_id = %s "
            "AND map_index = ANY(%s) AND NOT task_id = ANY(%s) ORDER BY 1, 2", DAG_ID, run_id, indexes, PRE_WAIT):
        out.setdefault(str(index), {})[task.split(".")[-1]] = state
    return out


class Sample:
    """Everything counted at one instant: CPU per tree, worker executions, reschedules, DB rows."""

    def __init__(self, stack, db: Db, worker_log: Path) -> None:
        self.at = time.monotonic()
        self.machine = machine_cpu()
        self.cpu = {c.name: tree_cpu(c.proc.pid) for c in stack.components}
        self.executions = worker_log.read_bytes().count(EXECUTING_LINE)
        self.reschedules = db.rows("SELECT count(*) FROM task_reschedule")[0][0]
        self.db = db.written()


def diff(a: Sample, b: Sample) -> dict[str, Any]:
    return {"seconds": b.at - a.at, "cpu_s": {k: b.cpu[k] - a.cpu.get(k, 0) for k in b.cpu},
            "machine_busy_cpu_s": b.machine[0] - a.machine[0], "machine_cpu_s": b.machine[1] - a.machine[1],
            "worker_executions": b.executions - a.executions, "task_reschedule_rows": b.reschedules - a.reschedules,
            "db": _delta(b.db, a.db)}


def first_deliveries(stack, store: Path, week: dt.date, codes: list[str], timeout: float) -> dict[str, Any]:
    """Approve ``codes`` through the REST API; seconds from each call to its first ledger ``sent_at``."""
    from msp_reports.approval import variable_key

    approved_at: dict[str, dt.datetime] = {}
    for code in codes:
        approved_at[code] = dt.datetime.now(dt.timezone.utc)
        r = stack.api("POST", "/variables", json={"key": variable_key(code, week),
                                                   "value": json.dumps({"decision": "approve", "by": "bench"})})
        r.raise_for_status()
    found: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(found) < len(codes) and time.monotonic() < deadline:
        for code in codes:
            if code in found:
                continue
            sent = []
            for f in (store / code / week.isoformat() / "ledger").glob("*.json"):
                with contextlib.suppress(ValueError, OSError):
                    rec = json.loads(f.read_text())
                    if rec.get("state") == "sent" and rec.get("sent_at"):
                        sent.append(dt.datetime.fromisoformat(rec["sent_at"]))
            if sent:
                found[code] = (min(sent) - approved_at[code]).total_seconds()
        time.sleep(0.5)
    return {"approved": codes, "seconds": found, "not_delivered_within_s": timeout if len(found) < len(codes) else None}


def measure(project: Path, n: int, minutes: float, approve: int, wait_task: str, workdir: Path,
            window_from: str = "parked", approval_timeout: float = 300, log=print) -> dict[str, Any]:
    import requests

    from benchmarks.common import airflow_env, bench_week
    from benchmarks.report import machine
    from devtools.demo import DemoServices
    from devtools.simulators.server import connection_env, demo_connections
    from tests.integration import test_celery_stack as cs

    pg_user = cs._require_services()
    week = bench_week()
    started = time.monotonic()
    out: dict[str, Any] = {"project": str(project), "revision": _revision(project), "customers": n,
                           "minutes": minutes, "week_of": week.isoformat(), "wait_task": wait_task,
                           "machine_start": machine(), "timings_s": {}}
    home, msp = workdir / "airflow", workdir / "msp"
    (home / "logs").mkdir(parents=True)
    registry, codes = bench_registry(week, n, workdir / "registry.yaml")
    password = secrets.token_urlsafe(16)
    (home / "passwords.json").write_text(json.dumps({"admin": password}))
    api_port = cs.free_port()
    with cs.fresh_database(pg_user) as dbname, cs.empty_redis_db() as redis_db, \
            DemoServices(week, workdir / "demo") as services:
        channels = {f"teams_{c.lower()}": f"{c.lower()}-shared" for c in codes}
        channels[services.registry.msp.internal_teams_conn_id] = "weekly-reports"
        conns = demo_connections(services.sim.base_url, services.sim.creds, channels)
        conns["smtp_default"] = services.mail.connection(str(services.registry.msp.from_email))
        # Airflow's own REST API, for a revision whose tasks call it (the hitl branch's watcher answers
        # the parked Required Actions through it); unused by the others
        conns["msp_airflow_api"] = {"conn_type": "http", "host": "127.0.0.1", "port": api_port,
                                    "login": "admin", "password": password}
        env = cs._airflow_env(home, dbname, pg_user, redis_db, api_port, msp, home / "passwords.json")
        env = {**project_env(env, project), **connection_env(conns), "AIRFLOW_VAR_MSP_REPORTS_REGISTRY": str(registry)}
        t = time.monotonic()
        demo_env = {**os.environ, **airflow_env(workdir / "seed-airflow"), **connection_env(services.connections())}
        copy_weeks(seed_demo_week(week, workdir / "seed", demo_env), msp / "store", week, codes)
        out["timings_s"]["seed store"] = time.monotonic() - t
        s = cs.Stack(env, home, f"http://127.0.0.1:{api_port}", password)
        db = None
        try:
            t = time.monotonic()
            s.airflow("db", "migrate", timeout=600)
            zero_slot_pools(s, project)
            out["timings_s"]["db migrate + pools"] = time.monotonic() - t
            t = time.monotonic()
            s.start("api-server", "api-server", "--port", str(api_port), "--host", "127.0.0.1")
            s.start("scheduler", "scheduler")
            s.start("dag-processor", "dag-processor")
            s.start("triggerer", "triggerer", "--skip-serve-logs")
            s.start("worker", "celery", "worker", "--concurrency", str(cs.WORKER_CONCURRENCY), "--skip-serve-logs")
            s.wait_for("the API server", lambda: requests.get(f"{s.api_url}/api/v2/version", timeout=5).ok,
                       cs.STARTUP_TIMEOUT)
            s.login()
            s.wait_for(f"{DAG_ID} to be parsed", lambda: s.api("GET", f"/dags/{DAG_ID}").ok, cs.STARTUP_TIMEOUT)
            out["timings_s"]["components up, DAG parsed"] = time.monotonic() - t
            db = Db(pg_user, dbname)
            worker_log = home / "logs" / "worker.log"
            t = time.monotonic()
            r = s.api("POST", f"/dags/{DAG_ID}/dagRuns", json={"dag_run_id": f"bench-waiting-{n}", "logical_date": None,
                                                              "conf": {"week_of": week.isoformat()}})
            r.raise_for_status()
            run_id = r.json()["dag_run_id"]
            s.wait_for("the pre-wait tasks to be expanded and marked done", lambda: mark_pre_wait_done(db, run_id, n),
                       cs.STARTUP_TIMEOUT, 1)
            out["timings_s"]["trigger -> pre-wait tasks marked done"] = time.monotonic() - t
            log(f"waiting: pre-wait tasks done after {time.monotonic() - t:.0f}s; waiting for {n} waits to park")
            seen: set[int] = set()

            def all_seen():
                nonlocal seen
                seen = seen_waiting(db, run_id, wait_task, seen)
                return len(seen) >= n

            reach = Sample(s, db, worker_log)
            if window_from == "parked":
                s.wait_for(f"every customer's {wait_task} to be seen waiting", all_seen, 3600, 2)
                start = Sample(s, db, worker_log)
                out["reach_waiting"] = diff(reach, start)
                out["timings_s"]["trigger -> all waiting"] = time.monotonic() - t
                log(f"waiting: all {n} waiting after {time.monotonic() - t:.0f}s; measuring {minutes} min")
            else:  # from the moment every report is rendered: the waits' first executions are in the window
                start = reach
                log(f"waiting: measuring {minutes} min from now (every report rendered)")
            out["window_from"] = window_from
            load_before = os.getloadavg()
            deadline = time.monotonic() + minutes * 60
            seen_at: float | None = None
            while time.monotonic() < deadline:
                dead = [c.name for c in s.components if not c.alive()]
                if dead:
                    raise RuntimeError(f"{', '.join(dead)} exited during the window\n{s.diagnostics()}")
                if seen_at is None and all_seen():
                    seen_at = time.monotonic() - start.at
                time.sleep(min(10, max(0, deadline - time.monotonic())))
            end = Sample(s, db, worker_log)
            out["all_seen_waiting_after_s"] = seen_at if window_from == "rendered" else 0.0
            out["seen_waiting_at_window_end"] = len(seen_waiting(db, run_id, wait_task, seen))
            out["window"] = diff(start, end)
            out["load_window"] = {"before": load_before, "after": os.getloadavg()}
            out["states_at_window_end"] = states(db, run_id)
            picks = sorted({codes[round(i * (n - 1) / max(1, approve - 1))] for i in range(approve)})
            log(f"waiting: approving {', '.join(picks)}")
            out["first_delivery"] = first_deliveries(s, msp / "store", week, picks, timeout=approval_timeout)
            out["after_approvals"] = diff(end, Sample(s, db, worker_log))
            out["approved_states"] = approved_states(db, run_id, [codes.index(c) for c in picks])
            out["machine_end"] = machine()
        except BaseException:
            with contextlib.suppress(Exception):
                log(s.diagnostics())
            raise
        finally:
            if db is not None:
                db.close()
            s.stop()
    out["timings_s"]["whole benchmark"] = time.monotonic() - started
    return out


def _revision(project: Path) -> str:
    done = subprocess.run(["git", "-C", str(project), "log", "-1", "--format=%h %s"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(project), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return (done.stdout.strip()[:90] or "unknown") + (" (uncommitted changes)" if dirty else "")


# ---- the figures ------------------------------------------------------------------------------
def summary(res: dict[str, Any]) -> str:
    from benchmarks.report import markdown_table, secs

    w, n, mins = res["window"], res["customers"], res["window"]["seconds"] / 60
    cpu = w["cpu_s"]
    fd = res["first_delivery"]["seconds"]
    delays = sorted(fd.values())
    rows = [
        ("task executions on the worker in the window", f"{w['worker_executions']}",
         f"{w['worker_executions'] / mins / n:.3g} per customer per minute"),
        ("task_reschedule rows written in the window", f"{w['task_reschedule_rows']}", ""),
        *((f"CPU: {name} (process tree)", secs(cpu[name]), f"{cpu[name] / w['seconds'] * 100:.0f} % of one core")
          for name in COMPONENTS if name in cpu),
        ("CPU: all Airflow components", secs(sum(cpu.values())),
         f"{sum(cpu.values()) / w['seconds'] * 100:.0f} % of one core (2 cores = 200 %)"),
        ("CPU: the whole machine (every process, ours or not)", secs(w["machine_busy_cpu_s"]),
         f"{w['machine_busy_cpu_s'] / w['machine_cpu_s'] * 100:.0f} % of all cores busy"),
        ("DB rows written (inserted + updated + deleted)", f"{w['db']['rows']:,}",
         f"{w['db']['rows'] / mins:,.0f} per minute; {w['db']['commits']:,} commits"),
        ("busiest tables (rows written)", ", ".join(f"{t} {v:,}" for t, v in w["db"]["tables"].items()), ""),
        ("approval -> first delivery (median, max)",
         f"{secs(delays[len(delays) // 2])}, {secs(delays[-1])}" if delays else "none delivered",
         f"{len(delays)} of {len(res['first_delivery']['approved'])} approved customers delivered"
         + (f" (the rest not within {res['first_delivery']['not_delivered_within_s']:.0f} s)"
            if res["first_delivery"]["not_delivered_within_s"] else "")),
    ]
    if res.get("window_from", "parked") == "parked":
        reached = (f"the window began once every wait had been seen waiting, which took "
                   f"{res['reach_waiting']['seconds']:.0f} s and {res['reach_waiting']['worker_executions']} task "
                   "executions after the reports were rendered")
    else:
        seen = res.get("all_seen_waiting_after_s")
        reached = ("the window began as every report was rendered; " +
                   (f"every wait was seen waiting {seen:.0f} s into it" if seen is not None else
                    f"only {res['seen_waiting_at_window_end']} of {n} waits had been seen waiting by its end"))
    head = (f"{n} customers waiting {mins:.1f} min, {res['revision']} (wait task {res['wait_task']}); "
            f"{reached}; load average "
            f"{', '.join(f'{x:.2f}' for x in res['load_window']['before'])} at the window's start, "
            f"{', '.join(f'{x:.2f}' for x in res['load_window']['after'])} at its end")
    return head + "\n\n" + markdown_table(("figure", "value", "per"), rows) + "\n"


def _ensure_project_path(project: Path, argv: list[str]) -> None:
    """Re-run under the checkout's plugins when ``msp_reports`` would be imported from elsewhere."""
    want = str(project / "plugins")
    if os.environ.get("MSP_BENCH_WAITING_CHILD") == want:
        return
    env = {**os.environ, "MSP_BENCH_WAITING_CHILD": want, "MSP_BENCH_PROJECT": str(project),
           "PYTHONPATH": os.pathsep.join([want, str(BENCH_ROOT)])}
    child = subprocess.Popen([sys.executable, "-m", "benchmarks.waiting", *argv], env=env, cwd=BENCH_ROOT)
    for sig in (signal.SIGTERM, signal.SIGINT):  # the child stops its stack and drops its database
        signal.signal(sig, lambda signum, frame: child.send_signal(signal.SIGTERM))
    raise SystemExit(child.wait())


def _terminate(signum, frame) -> None:
    raise SystemExit(128 + signum)  # so the stack is stopped and the database dropped (finally blocks)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)  # also when started in the background, where SIGINT is ignored
    parser = argparse.ArgumentParser(prog="python -m benchmarks.waiting", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, default=BENCH_ROOT,
                        help="a checkout of this project whose DAG and plugins are measured (default: this one)")
    parser.add_argument("--customers", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=2)
    parser.add_argument("--approve", type=int, default=5, help="customers approved after the window")
    parser.add_argument("--approval-timeout", type=float, default=300,
                        help="seconds to wait for the approved customers' first deliveries")
    parser.add_argument("--wait-task", default=f"{GROUP}.wait_for_approval",
                        help="the per-customer task that waits (its task_id)")
    parser.add_argument("--window-from", choices=("parked", "rendered"), default="parked",
                        help="start the window once every wait was seen waiting (parked), or as soon as every "
                             "report is rendered (rendered: the waits' first executions fall in the window)")
    parser.add_argument("--out", type=Path, default=None, help="JSON result (default var/bench/waiting-<n>.json)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, store)")
    args = parser.parse_args(argv)
    project = args.project.resolve()
    _ensure_project_path(project, argv)
    workdir = Path(tempfile.mkdtemp(prefix="msp-bench-waiting-"))
    print(f"waiting: work folder {workdir}; project {project}", file=sys.stderr, flush=True)
    try:
        res = measure(project, args.customers, args.minutes, args.approve, args.wait_task, workdir,
                      window_from=args.window_from, approval_timeout=args.approval_timeout, log=lambda m: print(m, file=sys.stderr, flush=True))
    except BaseException as exc:
        if type(exc).__name__ == "Skipped":  # PostgreSQL or Redis not reachable (the stack test's check)
            print(f"waiting: not run: {exc}", file=sys.stderr)
            return 2
        raise
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    out = args.out or BENCH_ROOT / "var" / "bench" / f"waiting-{args.customers}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=str))
    print(summary(res))
    print(f"written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
