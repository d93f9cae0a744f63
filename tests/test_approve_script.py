"""The README's CLI approval, run exactly as written, sets the Variable in scripts/airflow.sh's home.

``.venv/bin/airflow variables set`` by hand used ``~/airflow``; ``scripts/approve.sh`` sets the
Airflow home and database airflow.sh uses (``$MSP_AIRFLOW_HOME``, here a temporary one) first.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import ROOT

KEY = "weekly_report_approval__ACME__2026-11-16"


def _readme_commands() -> list[str]:
    """The ``bash scripts/approve.sh ...`` lines of the README, comments dropped."""
    text = (ROOT / "README.md").read_text()
    return [line.split("  #")[0].strip() for line in text.splitlines()
            if line.startswith("bash scripts/approve.sh ")]


def _clean_env(tmp_path: Path, home: Path) -> dict[str, str]:
    """No Airflow settings of this test process; a HOME of its own, to see that ~/airflow stays unused."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MSP_"))}
    (tmp_path / "user").mkdir(exist_ok=True)
    return {**env, "HOME": str(tmp_path / "user"), "MSP_AIRFLOW_HOME": str(home)}


@pytest.fixture(scope="module")
def ui_home(tmp_path_factory) -> Path:
    from devtools.demo import airflow_env

    home = tmp_path_factory.mktemp("ui-home")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
           **airflow_env(home, home / "var")}
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    return home


def _variable(home: Path, tmp_path: Path) -> str:
    from devtools.demo import airflow_env

    env = {**_clean_env(tmp_path, home), **airflow_env(home, home / "var")}
    out = subprocess.run([sys.executable, "-m", "airflow", "variables", "get", KEY], check=True, env=env,
                         capture_output=True, text=True, timeout=300)
    return out.stdout.strip().splitlines()[-1]


def test_readme_shows_the_script(tmp_path):
    commands = _readme_commands()
    assert len(commands) == 3, commands
    assert all(KEY.split("__", 1)[1].replace("__", " ") in c for c in commands)
    assert "airflow variables set weekly_report_approval" not in (ROOT / "README.md").read_text().split(
        "## Reviewing and approving")[1].split("```bash")[1].split("```")[0]


@pytest.mark.parametrize("which, expected", [(0, "approve 3f2a9c1e"), (2, "reject backup figures need checking")])
def test_readme_command_sets_the_variable_in_airflow_sh_home(ui_home, tmp_path, which, expected):
    command = _readme_commands()[which]
    done = subprocess.run(shlex.split(command), cwd=ROOT, env=_clean_env(tmp_path, ui_home),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert KEY in done.stdout and str(ui_home) in done.stdout
    assert _variable(ui_home, tmp_path) == expected
    assert not (tmp_path / "user" / "airflow").exists()  # ~/airflow was never used


def test_refuses_without_the_home_or_with_a_bad_value(tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "scripts/approve.sh", *args], cwd=ROOT, capture_output=True, text=True,
                              env=_clean_env(tmp_path, tmp_path / "nowhere"), timeout=120)

    missing = run("ACME", "2026-11-16", "approve")
    assert missing.returncode != 0 and "start bash scripts/airflow.sh first" in missing.stderr
    assert re.search(r"too short|8", run("ACME", "2026-11-16", "approve", "3f2a").stderr)
    assert "needs a reason" in run("ACME", "2026-11-16", "reject").stderr
    assert "not a Monday" in run("ACME", "2026-11-17", "approve").stderr
    assert "no customer 'ZZZZ'" in run("ZZZZ", "2026-11-16", "approve").stderr
