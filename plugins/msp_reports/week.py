"""The report week: Monday 00:00 to Monday 00:00 in the customer's own timezone."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

UTC = dt.timezone.utc


@dataclass(frozen=True)
class ReportWeek:
    """One customer's reporting week.

    ``week_of`` is the Monday the week starts on (the date in file names); ``start`` and
    ``end`` are the UTC instants of Monday 00:00 local and the following Monday 00:00 local,
    so a DST week is 167 or 169 hours long.
    """

    week_of: dt.date
    timezone: str
    start: dt.datetime
    end: dt.datetime

    @classmethod
    def starting(cls, week_of: dt.date, timezone: str) -> ReportWeek:
        if week_of.weekday() != 0:
            raise ValueError(f"week_of {week_of} is not a Monday")
        tz = ZoneInfo(timezone)
        start = dt.datetime.combine(week_of, dt.time(0), tzinfo=tz).astimezone(UTC)
        end = dt.datetime.combine(week_of + dt.timedelta(days=7), dt.time(0), tzinfo=tz).astimezone(UTC)
        return cls(week_of=week_of, timezone=timezone, start=start, end=end)

    @classmethod
    def before(cls, report_monday: dt.date, timezone: str) -> ReportWeek:
        """The week that ends on ``report_monday`` (the Monday the report is sent)."""
        return cls.starting(report_monday - dt.timedelta(days=7), timezone)

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600

    @property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())

    def previous(self) -> ReportWeek:
        return ReportWeek.starting(self.week_of - dt.timedelta(days=7), self.timezone)

    def clip(self, begin: dt.datetime, finish: dt.datetime | None) -> float:
        """Seconds of ``[begin, finish)`` inside the week; an open interval runs to week end."""
        finish = finish or self.end
        lo, hi = max(begin, self.start), min(finish, self.end)
        return max(0.0, (hi - lo).total_seconds())

    def label(self) -> str:
        last = self.week_of + dt.timedelta(days=6)
        return f"{self.week_of:%d %b %Y} – {last:%d %b %Y}"


def report_monday(run_after: dt.datetime, msp_timezone: str) -> dt.date:
    """The Monday (in the MSP's timezone) on or before ``run_after``: the day the report is due."""
    local = run_after.astimezone(ZoneInfo(msp_timezone)).date()
    return local - dt.timedelta(days=local.weekday())


def not_before(report_day: dt.date, msp_timezone: str, at: dt.time = dt.time(9, 0)) -> dt.datetime:
    """Earliest delivery instant: ``at`` on the report's Monday, MSP time, as UTC."""
    return dt.datetime.combine(report_day, at, tzinfo=ZoneInfo(msp_timezone)).astimezone(UTC)


def requested_week(value: str | dt.date | None, today: dt.date) -> dt.date | None:
    """The ``week_of`` a run was asked for (the trigger form's Week of, or the conf), checked; None
    when none was given (the run reports on the latest week).

    It must be a Monday (the day a report week starts, in the customer's timezone) and the week
    must be over by ``today`` (the run's date in the MSP's timezone): a week still running, or one
    in the future, would report on data that does not exist yet.

    :raises ValueError: naming the value and what would be accepted.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, dt.datetime):
        value = value.date()
    if not isinstance(value, dt.date):
        try:
            value = dt.date.fromisoformat(str(value).strip())
        except ValueError:
            raise ValueError(f"week_of {value!r} is not a date: give the Monday the week starts, as YYYY-MM-DD "
                             "(e.g. 2026-11-16), or leave it empty for the latest week") from None
    latest = today - dt.timedelta(days=today.weekday() + 7)
    if value.weekday() != 0:
        monday = value - dt.timedelta(days=value.weekday())
        raise ValueError(f"week_of {value.isoformat()} is a {value:%A}, not a Monday: a report week starts on a "
                         f"Monday (that week's is {monday.isoformat()})")
    if value > latest:
        when = "is in the future" if value > today else f"has not ended yet (it ends on {value + dt.timedelta(days=7)})"
        raise ValueError(f"week_of {value.isoformat()} {when}: the latest week a run on {today.isoformat()} can "
                         f"report on is the week of {latest.isoformat()}")
    return value
