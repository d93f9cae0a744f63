"""What a week's ticket numbers mean, written once so that every PSA counts alike.

For one customer and the week ``[start, end)``, over service tickets (change tickets apart):

- ``opened``: tickets entered in the week;
- ``closed``: tickets closed in the week (a ticket can be opened and closed in the same week);
- ``sla_breaches``: see :data:`SLA_BREACH_DEFINITION`;
- ``backlog_end``: tickets entered before the week's end and not closed by then
  (:func:`open_at`);
- changes executed: change tickets closed in the week, listed rather than counted.

Each PSA module says how its records map onto :class:`Ticket` (which board or ticket type is a
change, which fields say "breached"); the counting is here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from msp_reports.snapshot import ChangeRecord, PriorityCount, TicketData

if TYPE_CHECKING:
    from msp_reports.week import ReportWeek

NO_PRIORITY = "No priority"
SLA_BREACH_DEFINITION = (
    "service tickets (not change tickets) entered or closed in the week with a response or "
    "resolution SLA breach, each ticket counted once"
)


@dataclass(frozen=True)
class Ticket:
    """The fields of a ticket the report uses, with dates parsed.

    ``in_sla`` is ``False`` when the ticket breached its response or resolution target,
    ``True`` when it met them, ``None`` when the PSA has not decided yet.
    """

    id: int
    summary: str
    priority: str
    status: str
    entered: dt.datetime
    closed: dt.datetime | None
    in_sla: bool | None


def in_week(instant: dt.datetime | None, week: ReportWeek) -> bool:
    return instant is not None and week.start <= instant < week.end


def open_at(ticket: Ticket, instant: dt.datetime) -> bool:
    """Entered before ``instant`` and not closed by then: part of the backlog at that instant."""
    return ticket.entered < instant and (ticket.closed is None or ticket.closed >= instant)


def change_record(ticket: Ticket, source: str) -> ChangeRecord:
    return ChangeRecord(ref=f"#{ticket.id}", summary=ticket.summary, executed_at=ticket.closed,
                        status=ticket.status or "Unknown", source=source)


def ticket_data(tickets: Iterable[Ticket], week: ReportWeek, backlog_end: int,
                changes: Iterable[ChangeRecord]) -> TicketData:
    """Count the week's service tickets; a ticket seen twice (two queries, two pages) counts once."""
    counts: dict[str, list[int]] = {}
    seen: set[int] = set()
    for t in tickets:
        if t.id in seen:
            continue
        seen.add(t.id)
        opened = in_week(t.entered, week)
        closed = in_week(t.closed, week)
        if not (opened or closed):
            continue
        row = counts.setdefault(t.priority, [0, 0, 0])
        row[0] += opened
        row[1] += closed
        row[2] += t.in_sla is False
    by_priority = [PriorityCount(priority=p, opened=o, closed=c, sla_breaches=b)
                   for p, (o, c, b) in sorted(counts.items())]
    return TicketData(
        opened=sum(p.opened for p in by_priority),
        closed=sum(p.closed for p in by_priority),
        sla_breaches=sum(p.sla_breaches for p in by_priority),
        backlog_end=backlog_end,
        by_priority=by_priority,
        changes=sorted(changes, key=lambda c: (c.executed_at or week.end, c.ref)),
    )
