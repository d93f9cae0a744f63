"""The demo: twelve customers, every simulator, a real SMTP server, and the real DAG.

``python -m devtools.demo run``   one Monday's reports end to end (``dag.test``), then a summary.
``python -m devtools.demo serve`` the same world behind ``airflow standalone`` (scheduler + UI).
``python -m devtools.demo qbr``   a whole quarter seeded, then the QBR packs (:mod:`devtools.qbr_demo`).

Everything lives under the project: the demo's Airflow home ``.airflow/demo/`` (SQLite) and its
reports under ``var/demo/``; ``serve`` has its own, ``.airflow/ui/`` and ``var/airflow/``
(:mod:`devtools.standalone`), so the two never share a week's runs or its deliveries.
Credentials for the simulators are generated per run and exist only in the Airflow connections
this process defines (environment variables), never on disk in the repo.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

from msp_reports.settings import PROJECT_ROOT

MSP_TIMEZONE = "Europe/London"
POOLS_FILE = PROJECT_ROOT / "include" / "pools.json"
SIM_PORT = 8765  # serve's simulators, when that port is free
DEMO_HOME = PROJECT_ROOT / ".airflow" / "demo"  # scripts/airflow.sh: .airflow/ui (devtools/standalone.py)


def airflow_env(home: Path, demo_dir: Path) -> dict[str, str]:
    """The environment that makes Airflow use the project's DAGs, plugins and a local SQLite DB."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",  # the connection form's Test button, on loopback
        "MSP_REPORTS_HOME": str(demo_dir),
        "MSP_REPORTS_TIMEZONE": MSP_TIMEZONE,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT / "plugins"), str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
    }


def import_pools(env: dict[str, str] | None = None) -> None:
    """Create or update the pools in ``include/pools.json`` (``airflow pools import``).

    The DAG's extract, render and deliver tasks run in these pools (per-source concurrency):
    a task whose pool does not exist is never scheduled, so every Airflow home needs them.
    """
    subprocess.run([sys.executable, "-m", "airflow", "pools", "import", str(POOLS_FILE)], check=True,
                   stdout=subprocess.DEVNULL, env=env or os.environ.copy())


def connections_import_json(conns: dict[str, dict]) -> str:
    """``conns`` (conn_id -> connection dict) in the file format ``airflow connections import`` reads."""
    return json.dumps({conn_id: {k: (json.dumps(v) if k == "extra" and not isinstance(v, str) else v)
                                 for k, v in conn.items()} for conn_id, conn in conns.items()}, indent=2)


class DemoServices:
    """Simulators + SMTP sink + the connections that point at them."""

    def __init__(self, week_of: dt.date, demo_dir: Path, sim_port: int | None = None, *, weeks: int | None = None) -> None:
        from msp_reports.registry import load_registry
        from msp_reports.settings import Settings
        from devtools.simulators.credentials import SimCredentials
        from devtools.simulators.mailsink import MailSink
        from devtools.simulators.server import SimServer
        from devtools.simulators.world import World

        self.registry = load_registry(Settings.load().registry_path)
        world = World(week_of) if weeks is None else World(week_of, weeks=weeks)  # weeks: the QBR demo's quarter
        self.sim = SimServer(world, SimCredentials.generate(), port=sim_port)
        # The demo MSP is on an UptimeRobot Pro plan, which allows "monitor limit x 2" requests a
        # minute (the simulator's default is the free plan's 10): seeding eight weeks of history
        # then does not sit out the rate limit for minutes.
        self.sim.state.extra["uptimerobot_rate_limit"] = 100
        # The demo seeds eight past weeks at once, where a real MSP read each of them the Monday
        # after: Cloudflare's notOlderThan (31 days by default here) would refuse the oldest.
        self.sim.state.extra["cloudflare_limits"] = {"maxDuration": 86_400, "notOlderThan": 93 * 86_400}
        self.mail = MailSink(demo_dir / "outbox")

    def __enter__(self) -> DemoServices:
        self.sim.__enter__()
        self.mail.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.mail.__exit__(*exc)
        self.sim.__exit__(*exc)

    def teams_channels(self) -> dict[str, str]:
        channels = {c.delivery.teams.conn_id: f"{c.code.lower()}-shared" for c in self.registry.customers}
        channels[self.registry.msp.internal_teams_conn_id] = "weekly-reports"
        return channels

    def connections(self) -> dict[str, dict]:
        from devtools.simulators.server import demo_connections

        conns = demo_connections(self.sim.base_url, self.sim.creds, self.teams_channels())
        conns["smtp_default"] = self.mail.connection(str(self.registry.msp.from_email))
        return conns

    def connection_env(self) -> dict[str, str]:
        from devtools.simulators.server import connection_env

        return connection_env(self.connections())

    def write_connections(self, path: Path) -> Path:
        """The same connections as a file for ``airflow connections import`` (owner-only: it holds secrets)."""
        path = Path(path)
        path.touch(mode=0o600)
        path.write_text(connections_import_json(self.connections()))
        return path


def seed_history(week_of: dt.date, weeks: int) -> int:
    """Extract and reconcile the ``weeks`` weeks before ``week_of`` with the pipeline's own functions,
    as if the DAG had run on those Mondays, so this week has a baseline and trends."""
    return seed_weeks([week_of - dt.timedelta(weeks=k) for k in range(weeks, 0, -1)])


def seed_weeks(weeks: list[dt.date], codes: list[str] | None = None) -> int:
    """Extract and reconcile each of ``weeks`` (oldest first) for ``codes`` (default: every
    customer) with the pipeline's own functions, as the weekly DAG would have on those Mondays."""
    from msp_reports import pipeline
    from msp_reports.registry import load_registry
    from msp_reports.settings import Settings

    settings = Settings.load()
    registry = load_registry(settings.registry_path)
    done = 0
    for week in weeks:
        past = week.isoformat()
        for c in registry.select(codes):
            item = {"customer": c.code, "week_of": past}
            for domain in pipeline.DOMAINS:
                try:
                    pipeline.extract(settings, item, domain)
                except Exception as exc:  # noqa: BLE001 - stored as unavailable, shown in that week
                    print(f"  history {c.code} {past} {domain}: {exc}", file=sys.stderr)
            pipeline.build_snapshot(settings, item)
            done += 1
    return done




def _summary(demo_dir: Path, services: DemoServices, week_of: dt.date) -> int:
    from msp_reports.pipeline import customer_status
    from msp_reports.store import ReportStore

    store = ReportStore(str(demo_dir / "store"))
    pdfs = sorted((demo_dir / "store").glob(f"*/{week_of}/report.pdf"))
    posts = services.sim.state.extra.get("teams_posts", {})
    statuses = [customer_status(store, c, week_of) for c in services.registry.customers]
    print()
    print(f"Week of {week_of} — {len(services.registry.customers)} customers")
    for s in statuses:
        flags = ", ".join(sorted({f["kind"] for f in s["flags"]})) or "no flags"
        print(f"  {s['customer']:5} {s['state']:<12} {flags}")
    print()
    print(f"PDF reports   {len(pdfs):3}  {demo_dir / 'store'}/<CUSTOMER>/{week_of}/report.pdf")
    got = _received_by_via(demo_dir, services, week_of)
    print(f"Emails        {sum(got['email'].values()):3}  " + _by_via(got["email"]) + f"; SMTP in {services.mail.folder}")
    print(f"Teams posts   {sum(got['teams'].values()):3}  " + _by_via(got["teams"])
          + f" + {len(posts.get('weekly-reports', []))} in #weekly-reports")
    print(f"Archived PDFs {sum(got['archive'].values()):3}  " + _by_via(got["archive"]) + f"; local in {demo_dir / 'archive'}")
    print(f"Roll-up            {demo_dir / 'store' / '_rollup' / str(week_of) / 'rollup.md'}")
    print(f"Received           {demo_dir / 'received'}/<CUSTOMER>/ (each email as .eml/.txt/.html, "
          "each Teams card as .json, archive.txt)")
    delivered = sum(s["state"] == "delivered" for s in statuses)
    return 0 if delivered == len(statuses) else 1


def _received_by_via(demo_dir: Path, services: DemoServices, week_of: dt.date) -> dict[str, dict[str, int]]:
    """Per channel and per carrier (SMTP, Gmail API, Graph, webhook, SharePoint, Drive, local): what
    the customers received, read from the SMTP sink, the simulators and the archive folder, and
    written out readably under ``received/<CODE>/`` (:func:`devtools.inbox.write_received`)."""
    from devtools.inbox import received, write_received

    counts: dict[str, dict[str, int]] = {"email": {}, "teams": {}, "archive": {}}
    for c in services.registry.customers:
        got = received(c, week_of, sim=services.sim, mail_folder=services.mail.folder,
                       archive_root=demo_dir / "archive", sender=str(services.registry.msp.from_email),
                       store_root=demo_dir / "store")
        write_received(c, got, demo_dir / "received" / c.code)
        for channel, n in (("email", len(got.emails)), ("teams", len(got.posts)), ("archive", len(got.archived))):
            via = getattr(c.delivery, channel).via
            counts[channel][via] = counts[channel].get(via, 0) + n
    return counts


def _by_via(counts: dict[str, int]) -> str:
    return "(" + ", ".join(f"{via} {n}" for via, n in sorted(counts.items())) + ")"


def run(args: argparse.Namespace) -> int:
    from devtools.simulators.world import latest_complete_week

    demo_dir = Path(args.dir).resolve()
    home = DEMO_HOME  # not scripts/airflow.sh's home: the demo's runs stay out of its scheduler
    if demo_dir.exists() and not args.keep:
        shutil.rmtree(demo_dir)
    demo_dir.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(airflow_env(home, demo_dir))
    week_of = args.week_of or latest_complete_week(dt.datetime.now(dt.timezone.utc), MSP_TIMEZONE)
    report_monday = week_of + dt.timedelta(days=7)
    print(f"Demo: reports for the week of {week_of} (sent Monday {report_monday}); output in {demo_dir}")

    print("• Preparing the Airflow database (SQLite) …", flush=True)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True,
                   stdout=subprocess.DEVNULL, env=os.environ.copy())
    import_pools()

    with DemoServices(week_of, demo_dir) as services:
        os.environ.update(services.connection_env())
        print(f"• Simulators on {services.sim.base_url}, SMTP on 127.0.0.1:{services.mail.port}")
        print(f"• Seeding {args.history} weeks of history …", flush=True)
        seed_history(week_of, args.history)

        from airflow.sdk import timezone  # noqa: F401 - after AIRFLOW_HOME is set
        from airflow.dag_processing.dagbag import DagBag
        from airflow.settings import configure_orm

        from devtools.engineer import approving_when_rendered

        configure_orm()
        dag = DagBag(str(PROJECT_ROOT / "dags")).dags["weekly_executive_report"]
        run_at = dt.datetime.combine(report_monday, dt.time(6, 0), tzinfo=ZoneInfo(MSP_TIMEZONE))
        print("• Running the DAG weekly_executive_report (each report approved once rendered) …", flush=True)
        with approving_when_rendered(str(demo_dir / "store"), week_of,
                                     [c.code for c in services.registry.customers], by="demo (account engineer)"):
            dag.test(logical_date=run_at, run_after=run_at)
        return _summary(demo_dir, services, week_of)


def sim_port(requested: int | None) -> int | None:
    """The simulators' port for ``serve``: ``--sim-port N`` as asked (0: any free port); by default
    :data:`SIM_PORT`, or any free port (None) when something already listens there, e.g. another
    ``scripts/airflow.sh`` on another ``--port``: a fixed default would stop the second one."""
    if requested is not None:
        return requested or None
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is free
        try:
            s.bind(("127.0.0.1", SIM_PORT))
        except OSError:
            print(f"Port {SIM_PORT} is taken: the simulators use a free port", flush=True)
            return None
    return SIM_PORT


def serve(args: argparse.Namespace) -> int:
    """Simulators and SMTP sink in this process, ``airflow standalone`` as a child (its own process group).

    Its own Airflow home and report folder (``.airflow/ui``, ``var/airflow``; see
    :mod:`devtools.standalone`), so a week the demo delivered is not this scheduler's, and the
    first manual run has something to review. The history is seeded once, on the first start.
    """
    from devtools.simulators.world import latest_complete_week
    from devtools.standalone import run_standalone, saved_password, standalone_env, ui_port, watcher_env

    demo_dir = Path(args.dir).resolve()
    demo_dir.mkdir(parents=True, exist_ok=True)
    home = Path(args.home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    port = ui_port(args.port)
    os.environ.update(airflow_env(home, demo_dir))
    os.environ.update(standalone_env(port, schedule=args.schedule))
    os.environ.update(watcher_env(home, port))
    week_of = args.week_of or latest_complete_week(dt.datetime.now(dt.timezone.utc), MSP_TIMEZONE)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True,
                   stdout=subprocess.DEVNULL, env=os.environ.copy())
    import_pools()
    with DemoServices(week_of, demo_dir, sim_port=sim_port(args.sim_port)) as services:
        os.environ.update(services.connection_env())
        baseline = week_of - dt.timedelta(weeks=1)
        if args.history and not any((demo_dir / "store").glob(f"*/{baseline}/snapshot.json")):
            print(f"Seeding {args.history} weeks of history before the week of {week_of} …", flush=True)
            seed_history(week_of, args.history)
        env = os.environ.copy()
        # standalone starts its components as `airflow ...` subprocesses: use this venv's
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        print(f"Simulators on {services.sim.base_url}; SMTP on 127.0.0.1:{services.mail.port}; "
              f"reports in {demo_dir}; emails land in {services.mail.folder}")
        password = saved_password(home)
        login = (f"log in as admin / {password}" if password else
                 "the admin password is printed by Airflow below")
        print(f"Starting airflow standalone (Airflow home {home}): UI on http://127.0.0.1:{port}; {login} "
              f"(saved in {home}/simple_auth_manager_passwords.json.generated)", flush=True)
        return run_standalone(env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    from devtools.standalone import DEFAULT_PORT, PORT_ENV, ui_dir, ui_home

    for name in ("run", "serve"):
        p = sub.add_parser(name)
        p.add_argument("--week-of", type=dt.date.fromisoformat, default=None,
                       help="Monday the reported week starts (default: the latest week due by now)")
    sub.choices["run"].add_argument("--dir", default=str(PROJECT_ROOT / "var" / "demo"), help="output folder")
    sub.choices["run"].add_argument("--history", type=int, default=8, help="weeks of history to seed")
    sub.choices["run"].add_argument("--keep", action="store_true", help="keep earlier demo output")
    serve_p = sub.choices["serve"]
    serve_p.add_argument("--dir", default=str(ui_dir()), help="output folder (default var/airflow, $MSP_AIRFLOW_DIR)")
    serve_p.add_argument("--home", default=str(ui_home()), help="Airflow home (default .airflow/ui, $MSP_AIRFLOW_HOME)")
    serve_p.add_argument("--port", type=int, default=None,
                         help=f"the UI's port on 127.0.0.1 (default ${PORT_ENV} or {DEFAULT_PORT})")
    serve_p.add_argument("--schedule", action="store_true",
                         help="let the scheduler start the Monday runs too (default: only triggered runs)")
    serve_p.add_argument("--history", type=int, default=8, help="weeks of history to seed on the first start")
    serve_p.add_argument("--sim-port", type=int, default=None,
                         help=f"the simulators' port (default {SIM_PORT}, or a free one when it is taken; 0: any free port)")
    qbr_p = sub.add_parser("qbr", help="a quarter of weeks seeded, then the QBR DAG for every customer "
                                       "(devtools/qbr_demo.py)")
    qbr_p.add_argument("--quarter", default=None, help="e.g. 2026-Q3 (default: the last complete quarter)")
    qbr_p.add_argument("--dir", default=str(PROJECT_ROOT / "var" / "demo-qbr"), help="output folder")
    qbr_p.add_argument("--keep", action="store_true",
                       help="keep earlier QBR demo output (and the weeks it seeded: not extracted again)")
    args = parser.parse_args(argv)
    if args.command == "qbr":
        from devtools import qbr_demo

        return qbr_demo.run(args)
    return run(args) if args.command == "run" else serve(args)


if __name__ == "__main__":
    raise SystemExit(main())
