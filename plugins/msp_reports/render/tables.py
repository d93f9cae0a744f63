"""Long lists of records, cut to a few pages.

However long the week, the report stays a few pages: a list of records (changes, incidents,
assets, findings, ...) longer than :data:`TABLE_ROW_LIMIT` shows its first rows, those that need
attention first, and one line that counts the rest by type ("… and 9,970 more changes, by
status: 7,976 completed, 1,994 failed"). The stored snapshot keeps every record, and every
total the report prints is computed from all of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jinja2

from msp_reports.escaping import Md, clean_text, escape_markdown

if TYPE_CHECKING:
    from msp_reports.snapshot import WeeklySnapshot

TABLE_ROW_LIMIT = 30  # rows one table of records shows; one summary line accounts for the rest
ACTION_LIMIT = 10  # numbered items under "Actions this week"
BREAKDOWN_LIMIT = 5  # types a summary line names; the rest are counted together


@dataclass(frozen=True)
class LongTable:
    """How a list of records is cut when it is long: what a record is called, the type the
    rest is counted by, and which records come first when the list is cut, so that what needs
    attention is shown. The cut is a rendering decision only: the stored snapshot keeps every
    record, and every total in the report (counts, averages, the incident matrix) uses them all.
    """

    noun: str  # singular; "s" makes the plural
    by: str
    kind: Callable[[Any], object]
    attention: Callable[[Any], Any] | None = None
    limit: int = TABLE_ROW_LIMIT


@dataclass(frozen=True)
class Shown:
    rows: list[Any]
    rest: Md  # the summary line; empty when every record is shown


def cut(items: Sequence[Any], table: LongTable) -> Shown:
    """The first ``table.limit`` records and "… and 9,950 more changes, by status: …"."""
    if len(items) <= table.limit:
        return Shown(list(items), Md(""))
    ordered = sorted(items, key=table.attention) if table.attention else list(items)
    rows, left = ordered[:table.limit], ordered[table.limit:]
    counts = Counter(clean_text(table.kind(item), 60) or "not stated" for item in left)
    named = counts.most_common(BREAKDOWN_LIMIT)
    parts = [f"{n:,} {escape_markdown(label, 60)}" for label, n in named]
    if other := len(left) - sum(n for _, n in named):
        parts.append(f"{other:,} other")
    noun = table.noun if len(left) == 1 else table.noun + "s"
    return Shown(rows, Md(f"_… and {len(left):,} more {noun}, by {table.by}: {', '.join(parts)}. "
                          "Your account engineer can send you the full list._"))


def _uptime_result(row: Any) -> str:
    return "no data" if row.uptime_pct is None else ("target met" if row.slo_met else "target missed")


def long_tables(snap: WeeklySnapshot) -> dict[str, LongTable]:
    """Every list of records the report shows, by the name the template uses."""
    return {
        "uptime": LongTable("row", "result", _uptime_result,
                            lambda r: {"target missed": 0, "no data": 1}.get(_uptime_result(r), 2)),
        "changes": LongTable("change", "status", lambda c: c.status),
        "assets": LongTable("asset", "last status", lambda a: a.last_status,
                            lambda a: bool(a.rpo_met(snap.week_end))),
        "incidents": LongTable("incident", "severity", lambda i: i.severity.capitalize()),
        "sites": LongTable("site", "status", lambda c: c.status_now,
                           lambda c: (c.availability_pct is None, c.availability_pct or 0.0)),
        "findings": LongTable("finding", "priority", lambda f: f.severity.capitalize()),
        "actions": LongTable("action", "area", lambda a: a.area, limit=ACTION_LIMIT),
    }


@jinja2.pass_context
def capped(context: Any, name: str, items: Sequence[Any]) -> Shown:
    """The template's ``capped("changes", rows)``: the list cut as :func:`long_tables` says."""
    return cut(items, long_tables(context["snap"])[name])
