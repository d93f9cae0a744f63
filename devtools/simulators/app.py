"""One process serves every simulator, each under its own path prefix.

``/<system>/...`` speaks that system's wire format (see each ``simulators/<system>.py``);
``/_sim/...`` is the control plane for tests: inject faults, read request counts, read what the
Teams webhook received.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import threading
from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from devtools.simulators.credentials import SimCredentials
from devtools.simulators.world import World

# system name -> module under devtools.simulators exposing ``router(world, state) -> APIRouter``
SIMULATED_SYSTEMS = ("zabbix", "connectwise", "datto", "defender", "cloudflare", "teams", "librenms", "uptimerobot", "veeam",
                     "halopsa", "sentinel", "graph", "gmail", "drive")


@dataclass
class Fault:
    """Make the next ``times`` requests under ``/<system>/`` misbehave.

    ``mode``: ``500`` / ``503`` (server error), ``429`` (with ``Retry-After: retry_after``),
    ``slow`` (sleep ``delay`` seconds first), ``malformed`` (200 with a body that is not JSON),
    ``empty`` (the API answers normally, but the customer has no records at all),
    ``down`` (every request answers 503 until cleared), ``truncated`` (paging breaks: a page
    after the first comes back empty or its next link is refused while the totals still claim
    the whole collection; see :func:`cut_short`). ``path``: only requests whose path ends with
    it (e.g. ``/sendMail``) meet the fault; the others pass.
    """

    mode: str
    times: int = 1
    retry_after: int = 1
    delay: float = 0.0
    path: str = ""


_EMPTY: ContextVar[bool] = ContextVar("sim_empty", default=False)
_TRUNCATED: ContextVar[bool] = ContextVar("sim_truncated", default=False)


def paging_truncated() -> bool:
    """True while serving a request under a ``truncated`` fault."""
    return _TRUNCATED.get()


def cut_short(chunk: list, continuation: bool) -> list:
    """A page's items, or none for a continuation page under a ``truncated`` fault: the listing
    ends early while the envelope's totals still describe the whole collection."""
    return [] if continuation and _TRUNCATED.get() else chunk


class FaultTable(dict):
    """The injected faults; clearing them (tests do after each test) also opens every rate-limit
    window afresh, so that no test inherits the requests of the one before it."""

    def __init__(self, on_clear: Callable[[], None]) -> None:
        super().__init__()
        self.on_clear = on_clear

    def clear(self) -> None:
        super().clear()
        self.on_clear()


@dataclass
class SimState:
    full_world: World
    creds: SimCredentials
    faults: dict[str, Fault] = field(default_factory=dict)
    requests: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    extra: dict[str, Any] = field(default_factory=dict)  # per-simulator state (tokens, posts...)
    rate_windows: dict[str, Any] = field(default_factory=dict)  # (system, key) -> its window

    def __post_init__(self) -> None:
        table = FaultTable(self.rate_windows.clear)
        table.update(self.faults)
        self.faults = table

    @property
    def world(self) -> World:
        """The world this request sees: the real one, or under an ``empty`` fault the same
        customers with no records."""
        if _EMPTY.get():
            with self.lock:
                if "empty_world" not in self.extra:
                    self.extra["empty_world"] = self.full_world.emptied()
            return self.extra["empty_world"]
        return self.full_world

    def world_view(self) -> World:
        """A stand-in for :attr:`world` that a simulator may keep: every attribute is looked up
        on the world of the current request, so an ``empty`` fault reaches it too."""
        state = self

        class _View:
            def __getattr__(self, name: str) -> Any:
                return getattr(state.world, name)

        return _View()  # type: ignore[return-value]

    def take_fault(self, system: str, path: str = "") -> Fault | None:
        with self.lock:
            fault = self.faults.get(system)
            if fault is None or not path.endswith(fault.path):
                return None
            if fault.mode != "down":
                fault.times -= 1
                if fault.times <= 0:
                    del self.faults[system]
            return fault


def create_app(world: World, creds: SimCredentials) -> FastAPI:
    app = FastAPI(title="MSP source simulators", docs_url=None, redoc_url=None, openapi_url=None)
    state = SimState(world, creds)
    app.state.sim = state

    @app.middleware("http")
    async def faults(request: Request, call_next):
        system = request.url.path.strip("/").split("/", 1)[0]
        if system in SIMULATED_SYSTEMS:
            state.requests[system] += 1
            fault = state.take_fault(system, request.url.path)
            if fault is not None:
                if fault.mode == "slow":
                    await asyncio.sleep(fault.delay)
                elif fault.mode == "429":
                    return JSONResponse({"error": "rate limited"}, status_code=429,
                                        headers={"Retry-After": str(fault.retry_after)})
                elif fault.mode in ("500", "503", "down"):
                    code = 500 if fault.mode == "500" else 503
                    return JSONResponse({"error": "simulated outage"}, status_code=code)
                elif fault.mode == "malformed":
                    return Response('{"truncated": [', media_type="application/json")
                elif fault.mode in ("empty", "truncated"):
                    flag = _EMPTY if fault.mode == "empty" else _TRUNCATED
                    token = flag.set(True)
                    try:
                        return await call_next(request)
                    finally:
                        flag.reset(token)
        return await call_next(request)

    @app.post("/_sim/faults/{system}")
    async def set_fault(system: str, fault: dict) -> dict:
        with state.lock:
            state.faults[system] = Fault(**fault)
        return {"ok": True}

    @app.delete("/_sim/faults")
    async def clear_faults() -> dict:
        with state.lock:
            state.faults.clear()
        return {"ok": True}

    @app.get("/_sim/requests")
    async def request_counts() -> dict:
        return dict(state.requests)

    @app.get("/_sim/health")
    async def health() -> dict:
        return {"ok": True, "latest_week_of": world.latest_week_of.isoformat(),
                "now": dt.datetime.now(dt.timezone.utc).isoformat()}

    for system in SIMULATED_SYSTEMS:
        module = importlib.import_module(f"devtools.simulators.{system}")
        app.include_router(module.router(state), prefix=f"/{system}")
        # a system whose real URLs do not share one prefix (Drive's /upload/drive/v3/...) adds more
        for prefix, extra in getattr(module, "extra_routers", lambda _state: {})(state).items():
            app.include_router(extra, prefix=prefix)
    return app
