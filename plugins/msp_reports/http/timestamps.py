"""Wire timestamps in, UTC-aware datetimes out.

Every source writes time its own way (Datto: epoch seconds next to ISO ``+00:00``; Graph:
seven-digit fractions with ``Z``; Cloudflare: ``Z`` without fractions). Parsing them in one
place means a week boundary is compared with the same kind of value in every module.
"""

from __future__ import annotations

import datetime as dt
import re

UTC = dt.timezone.utc

_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_instant(value: str | int | float) -> dt.datetime:
    """Epoch seconds or an ISO-8601 string as an aware UTC datetime.

    A string without an offset is taken as UTC (the APIs used here document UTC). Fractions
    beyond microseconds are cut rather than rounded, so ``…35.5533333Z`` never lands in the
    next microsecond. Raises ``ValueError`` on anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, UTC)
    text = _FRACTION.sub(r"\1", value.strip())
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def iso_z(value: dt.datetime, fraction_digits: int = 0) -> str:
    """``2026-11-16T08:43:35Z``, or with ``fraction_digits`` (1-7) of sub-second precision."""
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if fraction_digits:
        text += "." + f"{value.microsecond:06d}0"[:fraction_digits]
    return text + "Z"
