"""The package's layers, read from the source (every import statement, at module level or inside
a function): the pipeline never imports the review package and the review package never imports
the pipeline, so neither can pull the other in (the cycle the review page's re-render made)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.factories import ROOT

PACKAGE = ROOT / "plugins" / "msp_reports"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT / "plugins").with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, source: str | None = None) -> set[str]:
    """Every module ``path`` imports, anywhere in it, as dotted names; ``from a import b`` counts
    as both ``a`` and ``a.b`` (``b`` may be a module)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source, str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _reaches(names: set[str], target: str) -> list[str]:
    return sorted(n for n in names if n == target or n.startswith(f"{target}."))


def test_the_pipeline_does_not_import_the_review_package():
    assert _reaches(imported(PACKAGE / "pipeline.py"), "msp_reports.review") == []


@pytest.mark.parametrize("path", sorted((PACKAGE / "review").rglob("*.py")), ids=lambda p: p.name)
def test_the_review_package_does_not_import_the_pipeline(path):
    assert _reaches(imported(path), "msp_reports.pipeline") == []


def test_the_state_is_pure():
    """Derived from records handed in: no store, no approval logic, no Airflow."""
    names = {n for n in imported(PACKAGE / "state.py") if n.startswith(("msp_reports", "airflow"))}
    assert names <= {"msp_reports.delivery.ledger", "msp_reports.delivery.ledger.CHANNELS"}, names


def test_the_reader_finds_imports_inside_functions_and_relative_ones():
    """The check itself: a lazy import and a relative one are both seen."""
    probe = PACKAGE / "review" / "probe.py"
    lazy = "def f():\n    from msp_reports import pipeline\n"
    assert _reaches(imported(probe, lazy), "msp_reports.pipeline") == ["msp_reports.pipeline"]
    assert _reaches(imported(probe, "from ..pipeline import render\n"), "msp_reports.pipeline") == [
        "msp_reports.pipeline", "msp_reports.pipeline.render"]
    assert _reaches(imported(probe, "import msp_reports.pipeline as p\n"), "msp_reports.pipeline") == [
        "msp_reports.pipeline"]
    assert _reaches(imported(PACKAGE / "pipeline.py", "from .review import status\n"), "msp_reports.review")
