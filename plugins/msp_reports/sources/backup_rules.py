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

Recovery (RTO) posture, the same way:

- **recovery test**: a system's proof that a machine can be brought back (Datto's screenshot
  verification, Veeam's SureBackup, a real restore session), with its outcome and, where the
  system gives start and end, how long it took. Only tests before week end count; the newest is
  the **last verified recovery**.
- **measured recovery time**: the duration of the newest passed test that has one.
- **estimated recovery time**: where nothing is measured, the MSP's planning figure for where
  the restore would run (:data:`ESTIMATED_RECOVERY_MINUTES`); never a measurement.
- **RTO**: registry ``ref`` keys, most specific first: ``rto_hours.asset.<asset name>``,
  ``rto_hours.<asset class>`` (``server``, ``workstation``), ``rto_hours``, else
  :data:`DEFAULT_RTO_HOURS` for the asset's class.
- **verification window**: ``ref.recovery_days`` (default 30): a test older than that does not
  count as evidence, and the report says "not verified".

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
from msp_reports.snapshot import ASSET_CLASSES, AssetClass, BackupAsset, RecoveryTest, RestoreSite

if TYPE_CHECKING:
    from msp_reports.week import ReportWeek

DEFAULT_RPO_HOURS = 24.0
#: RTO by asset class where the registry sets none: a server is back within a working day
DEFAULT_RTO_HOURS: dict[AssetClass, float] = {"server": 8.0, "workstation": 24.0}
DEFAULT_RECOVERY_DAYS = 30
MAX_RECOVERY_DAYS = 90  # how far back the sources read recovery tests
#: planning figures (not measurements) for a restore by where it can run: a virtual machine
#: booted on the local appliance, or one brought back from the offsite copy only
ESTIMATED_RECOVERY_MINUTES: dict[RestoreSite, float] = {"local": 60.0, "offsite": 720.0}


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


def rto_hours(ref: Mapping[str, str], system: str, name: str, asset_class: AssetClass) -> float:
    """The asset's RTO in hours: per asset, then per class, then the customer's, then the default."""
    for key in (f"rto_hours.asset.{name}", f"rto_hours.{asset_class}", "rto_hours"):
        if ref.get(key):
            hours = figures.non_negative(system, f"ref.{key}", ref[key])
            if hours == 0:
                raise SourceError(system, f"ref.{key} is {ref[key]!r}: an RTO must be more than 0 hours")
            return hours
    return DEFAULT_RTO_HOURS[asset_class]


def recovery_days(ref: Mapping[str, str], system: str) -> int:
    """``ref.recovery_days``: how recent a recovery test must be to count, default 30."""
    days = figures.count(system, "ref.recovery_days", ref.get("recovery_days") or DEFAULT_RECOVERY_DAYS)
    if not 1 <= days <= MAX_RECOVERY_DAYS:
        raise SourceError(system, f"ref.recovery_days is {days}: it must be from 1 to {MAX_RECOVERY_DAYS}")
    return days


def with_recovery(
    asset: BackupAsset,
    *,
    ref: Mapping[str, str],
    tests: Iterable[RecoveryTest],
    week: ReportWeek,
    asset_class: AssetClass = "server",
    restore_site: RestoreSite | None = None,
) -> BackupAsset:
    """The asset with its recovery posture at ``week.end`` (see the module docstring).

    A system that reports no tests leaves the asset "not verified"; an estimate is only given
    where the system says where a restore would run.
    """
    assert asset_class in ASSET_CLASSES
    known = sorted((t for t in tests if t.at < week.end), key=lambda t: t.at)
    measured = [t for t in known if t.passed and t.minutes is not None]
    return BackupAsset.model_validate({**dict(asset), **{
        "asset_class": asset_class,
        "rto_hours": rto_hours(ref, asset.source, asset.name, asset_class),
        "verify_within_days": recovery_days(ref, asset.source),
        "last_recovery_test": known[-1] if known else None,
        "measured_recovery": measured[-1] if measured else None,
        "estimated_recovery_minutes": ESTIMATED_RECOVERY_MINUTES.get(restore_site) if restore_site else None,
        "restore_site": restore_site,
    }})


def newest_before(times: Iterable[dt.datetime], before: dt.datetime) -> dt.datetime | None:
    """The newest instant before ``before``: the as-of of a backup source's data."""
    return max((t for t in times if t < before), default=None)
