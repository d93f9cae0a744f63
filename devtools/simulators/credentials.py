"""Credentials the simulators accept, made fresh for each run.

Nothing here is a real secret: the demo generates these at start, hands them to the simulator
process and writes them into the Airflow connections it defines, so no credential is ever
written into code or the repository.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass


def _tok(n: int = 16) -> str:
    return secrets.token_hex(n)


@dataclass(frozen=True)
class SimCredentials:
    zabbix_user: str
    zabbix_password: str
    zabbix_api_token: str
    connectwise_company: str
    connectwise_public_key: str
    connectwise_private_key: str
    connectwise_client_id: str
    datto_public_key: str
    datto_secret_key: str
    veeam_vspc_api_key: str
    veeam_vbr_user: str
    veeam_vbr_password: str
    graph_client_id: str
    graph_client_secret: str
    halo_client_id: str
    halo_client_secret: str
    sentinel_client_id: str
    sentinel_client_secret: str
    cloudflare_token: str
    teams_signing_key: str
    librenms_token: str
    uptimerobot_api_key: str

    @classmethod
    def generate(cls) -> SimCredentials:
        return cls(
            zabbix_user="report-bot",
            zabbix_password=_tok(),
            zabbix_api_token=_tok(32),
            connectwise_company="northwind",
            connectwise_public_key=_tok(8),
            connectwise_private_key=_tok(),
            connectwise_client_id=f"{_tok(4)}-{_tok(2)}-{_tok(2)}-{_tok(2)}-{_tok(6)}",
            datto_public_key=_tok(8),
            datto_secret_key=_tok(),
            veeam_vspc_api_key=_tok(24),
            veeam_vbr_user="svc-report",
            veeam_vbr_password=_tok(),
            graph_client_id=f"{_tok(4)}-{_tok(2)}-{_tok(2)}-{_tok(2)}-{_tok(6)}",
            graph_client_secret=_tok(20),
            halo_client_id=f"{_tok(4)}-{_tok(2)}-{_tok(2)}-{_tok(2)}-{_tok(6)}",
            halo_client_secret=_tok(24),
            sentinel_client_id=f"{_tok(4)}-{_tok(2)}-{_tok(2)}-{_tok(2)}-{_tok(6)}",
            sentinel_client_secret=_tok(20),
            cloudflare_token=_tok(20),
            teams_signing_key=_tok(),
            librenms_token=_tok(16),
            uptimerobot_api_key=f"ur{_tok(4)}-{_tok(12)}",
        )

    def to_dict(self) -> dict[str, str]:
        return asdict(self)
