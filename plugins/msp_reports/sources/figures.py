"""The checks every figure from a source passes where it is parsed, written once for all sources.

A source that answers with an impossible figure (a negative count, a ``true`` where a count
belongs, 150 % availability, ``NaN``, a ticket closed in 2099) has not answered the question:
its section must be unavailable, never printed with that figure, and never quietly coerced
(``int(True) == 1``, ``int(12.9) == 12``). Each check returns the value as the report uses it
or raises :class:`~msp_reports.exceptions.SourceResponseError` naming the system, the field and
the value, which the pipeline stores as that section's error.

Numbers may arrive as JSON numbers or as numeric strings (MySQL-backed APIs, UptimeRobot's
ratios); booleans are never numbers.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from msp_reports.exceptions import SourceResponseError

#: how far ahead of this machine's clock a source's clock may run before its time is impossible
CLOCK_SKEW = dt.timedelta(minutes=10)
#: the same for a wire time without an offset whose zone is not confirmed to be UTC: a server
#: writing its local time may run up to UTC+14 ahead (2099 is still refused)
OFFSET_SKEW = dt.timedelta(hours=14, minutes=10)

_WHOLE = re.compile(r"\+?\d+")


def _impossible(system: str, what: str, value: Any, why: str) -> SourceResponseError:
    return SourceResponseError(system, f"{what} is {value!r}, {why}")


def number(system: str, what: str, value: Any) -> float:
    """A finite number: a JSON number or a numeric string, not a boolean, NaN or infinity."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _impossible(system, what, value, "not a number")
    try:
        parsed = float(value)
    except ValueError:
        raise _impossible(system, what, value, "not a number") from None
    if not math.isfinite(parsed):
        raise _impossible(system, what, value, "not a finite number")
    return parsed


def count(system: str, what: str, value: Any) -> int:
    """A count of things: a non-negative whole number (``12.9`` and ``true`` are not counts)."""
    if isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _impossible(system, what, value, "not a whole number")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise _impossible(system, what, value, "not a whole number")
    if value < 0:
        raise _impossible(system, what, value, "a count cannot be negative")
    return int(value)


def non_negative(system: str, what: str, value: Any) -> float:
    """A duration or an amount (minutes, seconds, hours, a score): finite and not negative."""
    parsed = number(system, what, value)
    if parsed < 0:
        raise _impossible(system, what, value, "it cannot be negative")
    return parsed


def percentage(system: str, what: str, value: Any) -> float:
    """A percentage: finite, from 0 to 100."""
    parsed = number(system, what, value)
    if not 0 <= parsed <= 100:
        raise _impossible(system, what, value, "a percentage must be from 0 to 100")
    return parsed


def past_instant(system: str, what: str, value: dt.datetime, *, now: dt.datetime | None = None,
                 skew: dt.timedelta = CLOCK_SKEW) -> dt.datetime:
    """An instant that has happened: not later than now plus ``skew``.

    A record stamped in the future would make the report's "data as of" lie and hide the
    stale-data notice; it says the source's clock or data is wrong.
    """
    limit = (now or dt.datetime.now(dt.timezone.utc)) + skew
    if value > limit:
        why = f"in the future (after {limit.isoformat(timespec='seconds')})"
        raise _impossible(system, what, value.isoformat(), why)
    return value
