"""Crash points for the exactly-once tests: a simulator that has accepted a request (the message
is sent, the file stored) can hold its answer, so a test can kill the client in the window
between "the remote side has it" and "the ledger says so".

``state.extra["hold_after_accept"] = {"gmail.send": 60}`` holds that point's answers for up to
60 s; removing the key releases them. Each held point is appended to ``state.extra["held"]``.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devtools.simulators.app import SimState

HOLD_KEY = "hold_after_accept"
HELD_KEY = "held"


async def hold_after_accept(state: SimState, point: str) -> None:
    with state.lock:
        seconds = state.extra.get(HOLD_KEY, {}).get(point, 0)
        if seconds:
            state.extra.setdefault(HELD_KEY, []).append(point)
    deadline = time.monotonic() + seconds
    while seconds and time.monotonic() < deadline:
        with state.lock:
            if point not in state.extra.get(HOLD_KEY, {}):
                return
        await asyncio.sleep(0.05)
