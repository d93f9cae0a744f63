"""What the report means by a good backup, the same for every backup system.

Datto and Veeam write their history differently, but the report asks both the same questions
about each protected machine, as of the end of the customer's week (``[week.start, week.end)``):

- **attempt**: one backup run whose outcome was known at ``at``; each system decides what
  ``at`` is and which of its statuses produced a usable restore point (``ok``).
- **last good backup**: the newest ``ok`` attempt before week end, or a newer "last good"
  instant the system reports separately (Datto's ``lastSnapshot``, Veeam's latest job state).
- **last status**: the system's raw status of the newest attempt before week end.
- **backups / failures in week**: attempts in the week, and those of them that were not ``ok``.
- **RPO**: the customer's registry value ``ref.rpo_hours``, default 24 h, where the system
  gives no RPO per machine.

Anything after week end is ignored: a report re-run on Monday, or a month later, must show
the week as it ended, and a backup taken since must not make a silent machine look healthy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from msp_reports.exceptions import SourceError
from msp_reports.sources import figures
from msp_reports.snapshot import BackupAsset

if TYPE_CHECKING:
    from msp_reports.week import ReportWeek

DEFAULT_RPO_HOURS = 24.0


@dataclass(frozen=True)
class BackupAttempt:
    at: dt.datetime  # when the outcome was known
    status: str  # the system's raw status, shown as last status
    ok: bool  # produced a restore point that can be restored from


def rpo_hours(ref: Mapping[str, str], system: str) -> float:
    """``ref.rpo_hours`` as a number of hours, default :data:`DEFAULT_RPO_HOURS`."""
    value = ref.get("rpo_hours") or DEFAULT_RPO_HOURS
    hours = figures.non_negative(system, "ref.rpo_hours", value)
    if hours == 0:
        raise SourceError(system, f"ref.rpo_hours is {value!r}: an RPO must be more than 0 hours")
    return hours


def backup_asset(
    *,
    name: str,
    appliance: str,
    attempts: Iterable[BackupAttempt],
    week: ReportWeek,
    rpo_hours: float,
    source: str,
    also_good: Iterable[dt.datetime] = (),
    status_without_attempts: str = "no backups",
) -> BackupAsset:
    """One machine's state at ``week.end`` (see the module docstring for each definition).

    :param also_good: instants the system reports as good backups outside ``attempts``; only
        those before week end count.
    :param status_without_attempts: the last status when no attempt precedes week end.
    """
    known = sorted((a for a in attempts if a.at < week.end), key=lambda a: a.at)
    in_week = [a for a in known if a.at >= week.start]
    good = [a.at for a in known if a.ok] + [t for t in also_good if t < week.end]
    return BackupAsset(
        name=name,
        appliance=appliance,
        last_good_backup=max(good) if good else None,
        last_status=known[-1].status if known else status_without_attempts,
        backups_in_week=len(in_week),
        failures_in_week=sum(1 for a in in_week if not a.ok),
        rpo_hours=rpo_hours,
        source=source,
    )


def newest_before(times: Iterable[dt.datetime], before: dt.datetime) -> dt.datetime | None:
    """The newest instant before ``before``: the as-of of a backup source's data."""
    return max((t for t in times if t < before), default=None)
