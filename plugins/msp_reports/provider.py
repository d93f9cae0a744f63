"""Airflow provider metadata: makes each system's connection type appear in the UI's form.

Airflow 3.3 learns connection types only from an installed distribution's
``apache_airflow_provider`` entry point (pyproject.toml points here). The form fields are
declared as data (``conn-fields``, ``ui-field-behaviour``) so the API server shows them without
importing any hook. Secrets always go in ``password`` or in a field whose schema format is
``password``: Airflow masks both in logs and the UI.
"""

from __future__ import annotations

from typing import Any

PACKAGE = "msp-weekly-report"


def _text(label: str, description: str = "", default: Any = None) -> dict:
    schema: dict[str, Any] = {"type": ["string", "null"]}
    if default is not None:
        schema["default"] = default
    return {"label": label, "schema": schema, **({"description": description} if description else {})}


def _secret(label: str, description: str = "") -> dict:
    return {"label": label, "schema": {"type": ["string", "null"], "format": "password"},
            **({"description": description} if description else {})}


def _int(label: str, default: int) -> dict:
    return {"label": label, "schema": {"type": ["integer", "null"], "default": default}}


def _conn(conn_type: str, hook: str, name: str, *, hidden: list[str], relabel: dict[str, str],
          placeholders: dict[str, str], fields: dict[str, dict] | None = None) -> dict:
    return {
        "connection-type": conn_type,
        "hook-class-name": hook,
        "hook-name": name,
        "conn-fields": {"timeout": _int("Timeout (seconds)", 30), **(fields or {})},
        "ui-field-behaviour": {"hidden-fields": hidden, "relabeling": relabel, "placeholders": placeholders},
    }


CONNECTION_TYPES: list[dict] = [
    _conn("zabbix", "msp_reports.sources.zabbix.ZabbixHook", "Zabbix",
          hidden=["schema", "port", "extra"],
          relabel={"host": "API URL", "login": "Username", "password": "Password"},
          placeholders={"host": "https://zabbix.example.com/api_jsonrpc.php", "login": "report-bot"},
          fields={"api_token": _secret("API token", "Instead of username and password (Zabbix 5.4+)")}),
    _conn("connectwise", "msp_reports.sources.connectwise.ConnectWiseHook", "ConnectWise PSA",
          hidden=["schema", "port", "extra"],
          relabel={"host": "API base URL", "login": "Company ID + public key", "password": "Private key"},
          placeholders={"host": "https://api-eu.myconnectwise.net/v4_6_release/apis/3.0",
                        "login": "mycompany+AbCdEf123456"},
          fields={"client_id": _text("Client ID", "From the ConnectWise developer portal"),
                  "page_size": _int("Page size", 1000)}),
    _conn("datto", "msp_reports.sources.datto.DattoHook", "Datto BCDR",
          hidden=["schema", "port", "extra"],
          relabel={"host": "API base URL", "login": "Public key", "password": "Secret key"},
          placeholders={"host": "https://api.datto.com/v1"}),
    _conn("defender", "msp_reports.sources.defender.DefenderHook", "Microsoft Defender (Graph security)",
          hidden=["schema", "port", "extra"],
          relabel={"host": "Graph base URL", "login": "Application (client) ID", "password": "Client secret"},
          placeholders={"host": "https://graph.microsoft.com/v1.0"},
          fields={"login_url": _text("Login URL", "Microsoft identity platform", "https://login.microsoftonline.com"),
                  "tenant_id": _text("MSP tenant ID", "The app's home tenant, where the Test button signs in")}),
    _conn("cloudflare", "msp_reports.sources.cloudflare.CloudflareHook", "Cloudflare health checks",
          hidden=["schema", "port", "extra", "login"],
          relabel={"host": "API base URL", "password": "API token"},
          placeholders={"host": "https://api.cloudflare.com/client/v4"}),
    _conn("librenms", "msp_reports.sources.librenms.LibreNMSHook", "LibreNMS",
          hidden=["schema", "port", "extra", "login"],
          relabel={"host": "LibreNMS URL", "password": "API token"},
          placeholders={"host": "https://librenms.example.com"}),
    _conn("uptimerobot", "msp_reports.sources.uptimerobot.UptimeRobotHook", "UptimeRobot",
          hidden=["schema", "port", "extra", "login"],
          relabel={"host": "API base URL", "password": "API key (read-only)"},
          placeholders={"host": "https://api.uptimerobot.com/v2"}),
    _conn("halopsa", "msp_reports.sources.halopsa.HaloPSAHook", "HaloPSA",
          hidden=["schema", "port"], relabel={"host": "Resource server URL", "login": "Client ID", "password": "Client secret"},
          placeholders={"host": "https://yourmsp.halopsa.com", "extra": '{"priority_names": {"1": "Critical"}}'},
          fields={"auth_url": _text("Authorisation server URL", "Default: <host>/auth"),
                  "tenant": _text("Tenant", "Hosted Halo tenant name, if any"),
                  "scope": _text("Scope", "", "all"), "page_size": _int("Page size", 100)}),
    _conn("sentinel", "msp_reports.sources.sentinel.SentinelHook", "Microsoft Sentinel",
          hidden=["schema", "port", "extra"],
          relabel={"host": "Azure Resource Manager URL", "login": "Application (client) ID", "password": "Client secret"},
          placeholders={"host": "https://management.azure.com"},
          fields={"tenant_id": _text("Managing tenant ID", "The MSP tenant (Azure Lighthouse)"),
                  "login_url": _text("Login URL", "Microsoft identity platform", "https://login.microsoftonline.com"),
                  "api_version": _text("api-version", "", "2024-03-01"), "page_size": _int("Page size ($top)", 50)}),
    _conn("veeam", "msp_reports.sources.veeam.VeeamHook", "Veeam Service Provider Console",
          hidden=["schema", "port", "login"], relabel={"host": "VSPC URL", "password": "VSPC API key"},
          placeholders={"host": "https://vspc.example.com:1280"},
          fields={"vbr_conn_id": _text("VBR connection id", "Connection of the VBR server the jobs run on",
                                       "veeam_vbr_default")}),
    _conn("veeam_vbr", "msp_reports.sources.veeam.VeeamVbrHook", "Veeam Backup & Replication",
          hidden=["schema", "port", "extra"], relabel={"host": "VBR REST URL", "login": "Username", "password": "Password"},
          placeholders={"host": "https://vbr.example.com:9419"},
          fields={"api_version": _text("x-api-version", "REST API revision the server accepts", "1.1-rev1")}),
    _conn("teams_workflow", "msp_reports.delivery.teams.TeamsWorkflowHook", "Microsoft Teams (Workflows webhook)",
          hidden=["schema", "port", "extra", "login"],
          relabel={"host": "Workflow URL (without sig)", "password": "sig"},
          placeholders={"host": "https://default….environment.api.powerplatform.com:443/powerautomate/automations/"
                                "direct/workflows/…/triggers/manual/paths/invoke?api-version=1"
                                "&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0"}),
]


def secret_fields(conn_type: str) -> frozenset[str]:
    """The extra fields of ``conn_type`` whose values are secrets (schema format ``password``)."""
    for conn in CONNECTION_TYPES:
        if conn["connection-type"] == conn_type:
            return frozenset(name for name, field in conn["conn-fields"].items()
                             if field["schema"].get("format") == "password")
    return frozenset()


def get_provider_info() -> dict:
    return {
        "package-name": PACKAGE,
        "name": "MSP weekly executive reports",
        "description": "Source systems and delivery channels for weekly MSP customer reports.",
        "connection-types": CONNECTION_TYPES,
        "versions": ["0.1.0"],
    }
