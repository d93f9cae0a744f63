"""The QBR demo: a whole quarter of weekly snapshots for the twelve customers, then the real QBR DAG.

``python -m devtools.demo qbr`` builds a world whose latest week is the last week of the last
complete quarter (so the stories, the ACME outage, the BRVO backup week and the CNDR incident,
fall in that quarter's last week), extracts and reconciles every week of the quarter with the
weekly pipeline's own functions, then runs ``quarterly_business_review`` (``dag.test``) for all
customers with the demo's engineer approving each pack once it is rendered, and says where the
packs went. Its own output folder (``var/demo-qbr``); the weekly demo's is left alone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

from devtools.demo import DEMO_HOME, MSP_TIMEZONE, DemoServices, airflow_env, import_pools, seed_weeks
from msp_reports.settings import PROJECT_ROOT

DAG_ID = "quarterly_business_review"


def run(args: argparse.Namespace) -> int:
    from msp_reports.qbr import Quarter
    from msp_reports.qbr_store import due_monday, last_complete_quarter

    demo_dir = Path(args.dir).resolve()
    if demo_dir.exists() and not args.keep:
        shutil.rmtree(demo_dir)
    demo_dir.mkdir(parents=True, exist_ok=True)
    DEMO_HOME.mkdir(parents=True, exist_ok=True)
    os.environ.update(airflow_env(DEMO_HOME, demo_dir))
    label = args.quarter or last_complete_quarter(dt.datetime.now(dt.timezone.utc), MSP_TIMEZONE)
    quarter = Quarter.parse(label)
    weeks = quarter.week_ofs()
    monday = due_monday(str(quarter))
    print(f"Demo: QBR packs for {quarter} ({len(weeks)} weeks, {weeks[0]} to {weeks[-1]}; due Monday {monday}); "
          f"output in {demo_dir}")
    print("• Preparing the Airflow database (SQLite) …", flush=True)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True,
                   stdout=subprocess.DEVNULL, env=os.environ.copy())
    import_pools()
    with DemoServices(weeks[-1], demo_dir, weeks=len(weeks)) as services:
        # the quarter's first week is months old by the wall clock: let Cloudflare's analytics reach it
        services.sim.state.extra["cloudflare_limits"] = {"maxDuration": 86_400, "notOlderThan": 400 * 86_400}
        os.environ.update(services.connection_env())
        print(f"• Simulators on {services.sim.base_url}, SMTP on 127.0.0.1:{services.mail.port}")
        codes = [c.code for c in services.registry.customers]
        # with --keep, weeks every customer already has (an earlier QBR demo's) are not extracted again
        todo = [w for w in weeks if not all((demo_dir / "store" / c / w.isoformat() / "snapshot.json").exists()
                                            for c in codes)]
        print(f"• Seeding {len(todo)} of the quarter's {len(weeks)} weeks for {len(codes)} customers "
              "(extract + reconcile, as the weekly runs did) …", flush=True)
        seed_weeks(todo)

        from airflow.dag_processing.dagbag import DagBag
        from airflow.settings import configure_orm

        from devtools.engineer import approving_when_rendered
        from msp_reports.approval_request import QBR
        from msp_reports.qbr_store import quarter_first_day
        from msp_reports.settings import Settings

        configure_orm()
        dag = DagBag(str(PROJECT_ROOT / "dags")).dags[DAG_ID]
        run_at = dt.datetime.combine(monday, dt.time(6, 0), tzinfo=ZoneInfo(MSP_TIMEZONE))
        root = Settings.load().store_root
        print(f"• Running the DAG {DAG_ID} for {quarter} (each pack approved once rendered) …", flush=True)
        with approving_when_rendered(root, quarter_first_day(str(quarter)), codes, by="demo (account engineer)",
                                     kind=QBR):
            dag.test(logical_date=run_at, run_after=run_at, run_conf={"quarter": str(quarter)})
        return summary(demo_dir, services, str(quarter))


def summary(demo_dir: Path, services: DemoServices, quarter: str) -> int:
    from devtools.inbox import received, write_received
    from msp_reports.qbr_store import FOLDER, archive_name, quarter_first_day, status

    store = demo_dir / "store"
    print()
    print(f"QBR {quarter} — {len(services.registry.customers)} customers")
    delivered = 0
    for c in services.registry.customers:
        s = status(str(store), c.code, quarter)
        got = received(c, quarter_first_day(quarter), sim=services.sim, mail_folder=services.mail.folder,
                       archive_root=demo_dir / "archive", sender=str(services.registry.msp.from_email),
                       store_root=store, filename=archive_name(c.code, quarter), folder=f"{FOLDER}/{quarter}")
        write_received(c, got, demo_dir / "received" / c.code)
        counts = f"email {len(got.emails)} ({c.delivery.email.via}), teams {len(got.posts)} ({c.delivery.teams.via}), " \
                 f"archive {len(got.archived)} ({c.delivery.archive.via})"
        ok = s["delivered"] and (len(got.emails), len(got.posts), len(got.archived)) == (1, 1, 1)
        delivered += ok
        print(f"  {c.code:5} {'delivered' if ok else 'NOT delivered: ' + str(s['channels']):<10} {counts}")
    print()
    print(f"QBR packs      {store}/<CUSTOMER>/{FOLDER}/{quarter}/report.pdf (+ sources.json: the weeks, by hash)")
    print(f"Archived as    {archive_name('<CUSTOMER>', quarter)}; local ones in {demo_dir / 'archive'}")
    print(f"Emails (SMTP)  {services.mail.folder}")
    print(f"Received       {demo_dir / 'received'}/<CUSTOMER>/ (each email as .eml/.txt/.html, each Teams card "
          "as .json, archive.txt)")
    print(f"Page images    pdftoppm -r 60 -png {store}/ACME/{FOLDER}/{quarter}/report.pdf /tmp/acme-qbr")
    return 0 if delivered == len(services.registry.customers) else 1
