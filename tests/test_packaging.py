"""What ships is only the product, and it stands on the runtime requirements alone.

The simulators, the demo and the other dev tools live in ``devtools/`` at the top level: they are
not in the wheel or the Airflow image, the product never imports them, and the simulators never
import the product (they are an independent claim about each vendor's API, not a copy of ours).
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.factories import ROOT

PRODUCT = ROOT / "plugins" / "msp_reports"
DEVTOOLS = ROOT / "devtools"


def _imports(path: Path) -> set[str]:
    """Top-level package names ``path`` imports (absolute imports only; relative ones stay inside)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _product_modules() -> list[str]:
    modules = []
    for path in sorted(PRODUCT.rglob("*.py")):
        parts = path.relative_to(ROOT / "plugins").with_suffix("").parts
        modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def test_the_product_never_imports_a_dev_tool():
    offenders = {str(p.relative_to(ROOT)) for p in PRODUCT.rglob("*.py") if "devtools" in _imports(p)}
    offenders |= {str(p.relative_to(ROOT)) for p in (ROOT / "dags").rglob("*.py") if "devtools" in _imports(p)}
    assert not offenders


def test_the_simulators_import_nothing_from_the_product():
    offenders = {str(p.relative_to(ROOT)) for p in (DEVTOOLS / "simulators").rglob("*.py")
                 if "msp_reports" in _imports(p)}
    assert not offenders


def test_no_dev_tool_is_left_inside_the_product_package():
    for name in ("simulators", "demo.py", "chaos.py", "render_pages.py"):
        assert not (PRODUCT / name).exists(), name
    assert "devtools" in (ROOT / ".dockerignore").read_text().split()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY --chown=airflow:0 plugins /opt/airflow/plugins" in dockerfile
    assert "devtools" not in dockerfile


def _uv() -> str:
    found = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    if not Path(found).exists():
        pytest.skip("uv is not installed (scripts/bootstrap.sh installs it)")
    return found


def test_the_wheel_holds_the_product_and_nothing_else(tmp_path):
    subprocess.run([_uv(), "build", "--wheel", "--out-dir", str(tmp_path), str(ROOT)], check=True,
                   capture_output=True, timeout=600)
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    code = [n for n in names if n.endswith(".py")]
    assert code and all(n.startswith("msp_reports/") for n in code), [n for n in code if not n.startswith("msp_reports/")]
    assert not [n for n in names if "simulator" in n or "devtools" in n or n.endswith(("demo.py", "chaos.py"))]
    assert set(code) == {str(p.relative_to(ROOT / "plugins")) for p in PRODUCT.rglob("*.py")}


def test_every_product_module_imports_with_the_runtime_requirements_alone(tmp_path):
    """A fresh environment from requirements.txt (no dev group): every product module imports."""
    uv = _uv()
    venv = tmp_path / "runtime"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run([uv, "pip", "install", "--quiet", "--python", str(python), "-r", str(ROOT / "requirements.txt")],
                   check=True, timeout=1200)
    dev_only = subprocess.run([str(python), "-c", "import aiosmtpd"], capture_output=True)
    assert dev_only.returncode != 0, "the runtime environment must not hold the dev dependencies"
    script = ("import importlib, sys\n"
              "failed = []\n"
              "for name in sys.argv[1:]:\n"
              "    try:\n"
              "        importlib.import_module(name)\n"
              "    except Exception as exc:\n"
              "        failed.append(f'{name}: {type(exc).__name__}: {exc}')\n"
              "print('\\n'.join(failed))\n"
              "sys.exit(1 if failed else 0)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"PYTHONPATH": str(ROOT / "plugins"), "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    result = subprocess.run([str(python), "-c", script, *_product_modules()], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]


def test_no_test_package_shadows_a_standard_library_module():
    """A subprocess with tests/ on its path (or a tool that adds it) must still import the stdlib:
    a ``tests/http`` package once hid ``http`` and broke ``airflow db migrate``."""
    clashes = sorted(p.name for p in (ROOT / "tests").iterdir()
                     if p.is_dir() and p.name in sys.stdlib_module_names)
    assert not clashes
