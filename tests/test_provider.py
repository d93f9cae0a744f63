"""The installed distribution registers each system's connection type with its own form fields."""

import importlib

import pytest

from msp_reports.provider import CONNECTION_TYPES, PACKAGE
from msp_reports.sources import SYSTEMS


@pytest.fixture(scope="module")
def providers():
    from airflow.providers_manager import ProvidersManager

    return ProvidersManager()


def test_every_source_system_and_channel_has_a_connection_type():
    declared = {c["connection-type"] for c in CONNECTION_TYPES}
    hooks = {importlib.import_module(f"msp_reports.sources.{s}").HOOK.conn_type for s in SYSTEMS}
    assert hooks <= declared
    assert "teams_workflow" in declared


@pytest.mark.parametrize("conn", CONNECTION_TYPES, ids=lambda c: c["connection-type"])
def test_declared_hook_class_matches_its_connection_type(conn):
    module, _, name = conn["hook-class-name"].rpartition(".")
    hook = getattr(importlib.import_module(module), name)
    assert hook.conn_type == conn["connection-type"]
    assert hook.hook_name == conn["hook-name"]


def test_airflow_discovers_the_form_fields_through_the_entry_point(providers):
    assert PACKAGE in providers.providers
    widgets = providers.connection_form_widgets
    assert widgets["extra__connectwise__client_id"].field["schema"]["title"] == "Client ID"
    assert widgets["extra__zabbix__api_token"].is_sensitive  # shown and stored as a secret
    behaviour = providers.field_behaviours["datto"]
    assert behaviour["relabeling"] == {"host": "API base URL", "login": "Public key", "password": "Secret key"}
    assert "extra" in behaviour["hidden_fields"]
    assert providers.hooks["cloudflare"].hook_class_name == "msp_reports.sources.cloudflare.CloudflareHook"
