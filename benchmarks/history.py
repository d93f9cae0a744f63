"""The weeks before the benchmark week, as the demo seeds them: the baseline for the
week-over-week rules and the trend charts. Made once, then copied into every child's store.

``python -m benchmarks.history <home>`` (child): extract and reconcile the demo customers'
``TREND_WEEKS - 1`` earlier weeks against the simulators into ``<home>/store``.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def child(home: Path) -> dict:
    from benchmarks.common import bench_week
    from devtools.demo import DemoServices, seed_history
    from msp_reports.render import TREND_WEEKS

    week = bench_week()
    os.environ["MSP_REPORTS_HOME"] = str(home)
    with DemoServices(week, home) as services:
        os.environ.update(services.connection_env())
        weeks = seed_history(week, TREND_WEEKS - 1)
    return {"week_of": week.isoformat(), "customer_weeks": weeks}


def main(argv: list[str]) -> None:
    from benchmarks.common import write_result

    write_result(child(Path(argv[0])))


# ---- driver -----------------------------------------------------------------------------------
def seed(workdir: Path) -> Path:
    """The seeded store (``<workdir>/msp/store``)."""
    from benchmarks.common import airflow_env, run_child

    home = workdir / "msp"
    run_child("benchmarks.history", [str(home)], env=airflow_env(workdir / "airflow", home), workdir=workdir,
              name="history")
    return home / "store"


def copy_into(store: Path, home: Path) -> None:
    """Give ``home`` its own copy of the seeded store (runs write into it)."""
    shutil.copytree(store, home / "store", dirs_exist_ok=True)


if __name__ == "__main__":
    main(sys.argv[1:])
