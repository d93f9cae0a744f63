"""delivery/google.py uses only the Google provider's public API: the provider is not pinned, and a
private member (``_get_field``, ``_authorize``, ``_conn``, ``_escape_drive_query_value``) may be
renamed or dropped in any release without notice."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from airflow.providers.google.common.hooks import base_google
from airflow.providers.google.suite.hooks import drive

from msp_reports.delivery import google
from msp_reports.delivery.google import drive_query_literal

PROVIDER_MODULES = (base_google, drive)
PROVIDER_CLASSES = (base_google.GoogleBaseHook, drive.GoogleDriveHook)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _self_attributes(tree: ast.AST) -> set[str]:
    """Names assigned as ``self.<name> = ...`` (instance attributes, invisible to ``dir``)."""
    return {t.attr for node in ast.walk(tree) if isinstance(node, (ast.Assign, ast.AnnAssign))
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"}


def _provider_private_members() -> set[str]:
    names = {n for cls in PROVIDER_CLASSES for n in dir(cls)}
    for module in PROVIDER_MODULES:
        tree = ast.parse(inspect.getsource(module))
        names |= _self_attributes(tree) | {n for n in vars(module)}
    return {n for n in names if _private(n)}


def _used_private_names(tree: ast.AST) -> set[str]:
    """Private names google.py reads, defines or imports from the provider."""
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and _private(node.attr)}
    used |= {node.name for node in ast.walk(tree)
             if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and _private(node.name)}
    used |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
             and (node.module or "").startswith("airflow.providers") for alias in node.names}
    return {n for n in used if _private(n)}


def test_google_delivery_uses_no_private_member_of_the_provider():
    tree = ast.parse(Path(google.__file__).read_text())
    clashes = _used_private_names(tree) & _provider_private_members()
    assert not clashes, (f"delivery/google.py relies on private members of apache-airflow-providers-google: "
                         f"{sorted(clashes)}; use the provider's public API or pin the provider's version")


def test_the_public_members_it_relies_on_exist():
    """What google.py calls instead; a release that drops one of them fails here, by name."""
    for name in ("get_credentials", "get_client_options", "num_retries"):
        assert hasattr(base_google.GoogleBaseHook, name), name
    assert callable(base_google.get_field)
    assert "api_version" in inspect.signature(drive.GoogleDriveHook.__init__).parameters
    assert "self.extras" in inspect.getsource(base_google.GoogleBaseHook.__init__)


def test_drive_query_literal_escapes_quotes_and_backslashes():
    assert drive_query_literal("O'Brien \\ Co.pdf") == "'O\\'Brien \\\\ Co.pdf'"
    assert drive_query_literal("plain") == "'plain'"
