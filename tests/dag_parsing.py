"""Parse the DAG folder in a fresh interpreter where any socket use or metadata-DB access fails.

The DAG processor parses every file often; a DAG file must not reach the network, the database or
load the heavy modules (the registry, the renderer, WeasyPrint), which belong in the tasks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.factories import ROOT

HEAVY = ("weasyprint", "msp_reports.registry", "msp_reports.render", "requests")


def parse_dag_folder(dag_id: str, tmp_path: Path, heavy: tuple[str, ...] = HEAVY) -> tuple[list[str], list[str]]:
    """The task ids of ``dag_id`` and which of ``heavy`` the parse imported."""
    script = textwrap.dedent(f"""
        import json, socket, sys
        def _no_network(*a, **k):
            raise RuntimeError("network access at parse time")
        socket.socket.connect = _no_network
        socket.create_connection = _no_network
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag({str(ROOT / 'dags')!r})
        assert not bag.import_errors, bag.import_errors
        import msp_reports  # noqa: the package itself is light
        print(json.dumps([sorted(bag.dags[{dag_id!r}].task_dict), [m for m in {heavy!r} if m in sys.modules]]))
    """)
    env = dict(os.environ)
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{tmp_path}/does-not-exist/nowhere.db"
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    import json

    tasks, loaded = json.loads(out.stdout.strip().splitlines()[-1])
    return tasks, loaded
