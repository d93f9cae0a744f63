"""The Jinja filters that write numbers and dates: with the section helpers, the only producers of :class:`Md`.

Everything else a template prints goes through :func:`finalize`, which escapes it for Markdown,
so a template author cannot forget to. ``None`` prints as a dash, never as zero.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from msp_reports.escaping import Md, escape_markdown


def finalize(value: Any) -> str:
    """The Markdown environment's ``finalize`` hook: :class:`Md` as written, the rest escaped."""
    if isinstance(value, Md):
        return value
    if value is None:
        return "—"
    return escape_markdown(value)


def pct(value: float | None, digits: int = 2) -> Md:
    return Md("—" if value is None else f"{value:.{digits}f}%")


def num(value: float | None, digits: int = 0) -> Md:
    return Md("—" if value is None else f"{value:,.{digits}f}")


def signed(value: float | None, digits: int = 0, unit: str = "") -> Md:
    if value is None:
        return Md("—")
    if round(value, digits) == 0:
        return Md(f"±0{unit}")
    sign = "+" if value > 0 else "−"
    return Md(f"{sign}{abs(value):,.{digits}f}{unit}")


def yesno(value: bool | None) -> Md:
    return Md("—" if value is None else ("Yes" if value else "No"))


def local_time(moment: dt.datetime | None, timezone: str) -> dt.datetime | None:
    """``moment`` in the customer's timezone; a naive time is taken as UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(ZoneInfo(timezone))


@jinja2.pass_context
def when(context: Any, moment: dt.datetime | None) -> Md:
    local = local_time(moment, context["timezone"])
    return Md("—" if local is None else f"{local:%a %d %b %Y %H:%M}")


@jinja2.pass_context
def delta(context: Any, name: str, digits: int = 0, unit: str = "") -> Md:
    change = context["rec"].deltas[name].change
    if change is None:
        return Md("no comparable figure last week")
    return signed(change, digits, unit)


@jinja2.pass_context
def versus(context: Any, name: str, digits: int = 0, unit: str = "") -> Md:
    """"+2 on last week", or why there is no comparison (no figure, or a partial week)."""
    change = context["rec"].deltas[name].change
    if change is None:
        return Md("no comparable figure for last week")
    return Md(f"{signed(change, digits, unit)} on last week")
