"""Run the simulators: in a background thread (tests) or as a process (demo, Airflow UI mode)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import threading
import time
from pathlib import Path

import requests
import uvicorn

from devtools.simulators.app import SIMULATED_SYSTEMS, create_app
from devtools.simulators.credentials import SimCredentials
from devtools.simulators.world import World, latest_complete_week


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SimServer:
    """The simulator app on ``127.0.0.1:<port>`` in a daemon thread; a context manager."""

    def __init__(self, world: World, creds: SimCredentials, port: int | None = None) -> None:
        self.world = world
        self.creds = creds
        self.port = port or free_port()
        self.app = create_app(world, creds)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="simulators")
        # the same app over TLS, for the clients that insist on https (see simulators/tls.py)
        from devtools.simulators.tls import SimCertificate

        self.certificate = SimCertificate.create()
        self.tls_port = free_port()
        tls_config = uvicorn.Config(self.app, host="127.0.0.1", port=self.tls_port, log_level="warning",
                                    access_log=False, ssl_certfile=self.certificate.certfile,
                                    ssl_keyfile=self.certificate.keyfile)
        self._tls_server = uvicorn.Server(tls_config)
        self._tls_thread = threading.Thread(target=self._tls_server.run, daemon=True, name="simulators-tls")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tls_base_url(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}"

    @property
    def state(self):
        return self.app.state.sim

    def __enter__(self) -> SimServer:
        from devtools.simulators import tls

        self._thread.start()
        self._tls_thread.start()
        deadline = time.monotonic() + 15
        while not (self._server.started and self._tls_server.started):
            if time.monotonic() > deadline or not (self._thread.is_alive() and self._tls_thread.is_alive()):
                raise RuntimeError("simulators did not start")
            time.sleep(0.02)
        tls.register(self.base_url, tls.TlsEndpoint(self.tls_base_url, self.certificate.ca_bundle))
        return self

    def __exit__(self, *exc) -> None:
        from devtools.simulators import tls

        tls.unregister(self.base_url)
        self._server.should_exit = True
        self._tls_server.should_exit = True
        self._thread.join(timeout=10)
        self._tls_thread.join(timeout=10)
        self.certificate.remove()


def demo_connections(base_url: str, creds: SimCredentials, teams_channels: dict[str, str]) -> dict[str, dict]:
    """Airflow connections (conn_id -> connection dict) that point every system at the simulators.

    ``teams_channels`` maps a Teams connection id to its channel name in the Teams simulator.
    """
    import importlib

    conns: dict[str, dict] = {}
    for system in SIMULATED_SYSTEMS:
        module = importlib.import_module(f"devtools.simulators.{system}")
        conns.update(module.demo_connections(base_url, creds, teams_channels))
    return conns


def connection_env(conns: dict[str, dict]) -> dict[str, str]:
    """``AIRFLOW_CONN_<ID>`` variables in Airflow's JSON connection format."""
    return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn) for conn_id, conn in conns.items()}


def main() -> None:
    """``python -m devtools.simulators.server``: serve until killed; write connections to a file."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("MSP_SIM_PORT", "8765")))
    parser.add_argument("--week-of", type=dt.date.fromisoformat, default=None,
                        help="latest week in the demo world (default: the latest week due by now)")
    parser.add_argument("--credentials-file", type=Path, required=True,
                        help="JSON file with the credentials the simulators accept (made if missing)")
    args = parser.parse_args()
    if args.credentials_file.exists():
        creds = SimCredentials(**json.loads(args.credentials_file.read_text()))
    else:
        creds = SimCredentials.generate()
        args.credentials_file.write_text(json.dumps(creds.to_dict()))
        args.credentials_file.chmod(0o600)
    week_of = args.week_of or latest_complete_week(dt.datetime.now(dt.timezone.utc))
    app = create_app(World(week_of), creds)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


def wait_until_up(base_url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{base_url}/_sim/health", timeout=1).ok:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"simulators at {base_url} did not answer within {timeout}s")
        time.sleep(0.1)


if __name__ == "__main__":
    main()
