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
    connectwise_company: str
    connectwise_public_key: str
    connectwise_private_key: str
    connectwise_client_id: str
    datto_public_key: str
    datto_secret_key: str
    graph_client_id: str
    graph_client_secret: str
    cloudflare_token: str
    teams_signing_key: str

    @classmethod
    def generate(cls) -> SimCredentials:
        return cls(
            zabbix_user="report-bot",
            zabbix_password=_tok(),
            connectwise_company="northwind",
            connectwise_public_key=_tok(8),
            connectwise_private_key=_tok(),
            connectwise_client_id=f"{_tok(4)}-{_tok(2)}-{_tok(2)}-{_tok(2)}-{_tok(6)}",
            datto_public_key=_tok(8),
            datto_secret_key=_tok(),
            graph_client_id=f"{_tok(4)}-{_tok(2)}-{_tok(2)}-{_tok(2)}-{_tok(6)}",
            graph_client_secret=_tok(20),
            cloudflare_token=_tok(20),
            teams_signing_key=_tok(),
        )

    def to_dict(self) -> dict[str, str]:
        return asdict(self)
