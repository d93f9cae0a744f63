"""The HTTP layer stands below the sources and the delivery channels, and delivery never leans on a source.

``msp_reports.http`` is shared by both sides; if it imported a source module, or a delivery hook
imported ``msp_reports.sources`` for its HTTP machinery, a change to one side's rules could break
the other's connections (the Teams webhook hook once posed as a source hook).
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.factories import ROOT

PRODUCT = ROOT / "plugins" / "msp_reports"


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute imports resolved; relative ones made absolute."""
    package = ".".join(path.relative_to(ROOT / "plugins").with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _offenders(folder: str, forbidden: tuple[str, ...]) -> dict[str, set[str]]:
    found = {}
    for path in sorted((PRODUCT / folder).rglob("*.py")):
        bad = {m for m in _imported_modules(path) if m.startswith(forbidden)}
        if bad:
            found[str(path.relative_to(ROOT))] = bad
    return found


def test_the_http_layer_imports_no_source_and_no_delivery_channel():
    assert _offenders("http", ("msp_reports.sources", "msp_reports.delivery")) == {}


def test_delivery_takes_its_http_machinery_from_the_http_layer_not_from_sources():
    assert _offenders("delivery", ("msp_reports.sources",)) == {}


def test_the_old_http_modules_are_gone_from_sources():
    for name in ("http", "paging", "oauth", "msidentity", "timestamps"):
        assert not (PRODUCT / "sources" / f"{name}.py").exists(), name
