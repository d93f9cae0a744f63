"""The calendar quarter a QBR covers, and which report weeks belong to it.

A report week runs Monday 00:00 to Monday 00:00 in the customer's timezone and is named by its
Monday, ``week_of`` (:mod:`msp_reports.week`). A week belongs to the quarter, and to the month,
that contains its **Thursday** (the ISO 8601 rule: a week is counted where most of its days
are), so every week is in exactly one month and one quarter, never split or counted twice.
Most quarters have 13 weeks; one with 14 Thursdays has 14 (2026-Q4: the weeks of Mon 28 Sep
2026 to Mon 28 Dec 2026), and a 90-day first quarter with 12 Thursdays has 12 (2027-Q1: Mon 4 Jan
to Mon 22 Mar 2027). A month has 4 or 5 weeks. The quarter's weeks end on the Monday after its
last week (:attr:`Quarter.ends`), which can be a few days before or after the calendar quarter's
end: 2026-Q3's weeks end on Mon 28 Sep 2026.

``week_of`` is a calendar date in the customer's own timezone, so the list of Mondays is the
same for every customer: a customer in Auckland and one in New York both have the week of
Mon 21 Sep 2026 in 2026-Q3. What differs is the instants those weeks cover (and their length: a
DST week is 167 or 169 hours), which each stored snapshot carries as ``week_start``/``week_end``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_PATTERN = re.compile(r"^(\d{4})-?Q([1-4])$", re.IGNORECASE)
THURSDAY = 3  # days after Monday


def week_month(week_of: dt.date) -> dt.date:
    """The first day of the month a week belongs to: the month of its Thursday."""
    thursday = week_of + dt.timedelta(days=THURSDAY)
    return thursday.replace(day=1)


@dataclass(frozen=True, order=True)
class Quarter:
    year: int
    number: int  # 1-4

    def __post_init__(self) -> None:
        if not isinstance(self.number, int) or not 1 <= self.number <= 4:
            raise ValueError(f"quarter number {self.number!r} is not 1-4")
        if not isinstance(self.year, int) or not 1 <= self.year <= 9998:
            raise ValueError(f"quarter year {self.year!r} is out of range")

    @classmethod
    def parse(cls, text: str) -> Quarter:
        """``"2026-Q3"`` (also ``"2026Q3"``, any case)."""
        match = _PATTERN.match(str(text).strip())
        if not match:
            raise ValueError(f"{text!r} is not a quarter such as 2026-Q3")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def containing(cls, day: dt.date) -> Quarter:
        """The calendar quarter of ``day`` (a plain date; for a week, use :meth:`of_week`)."""
        return cls(day.year, (day.month - 1) // 3 + 1)

    @classmethod
    def of_week(cls, week_of: dt.date) -> Quarter:
        """The quarter a report week belongs to: that of its Thursday."""
        return cls.containing(week_of + dt.timedelta(days=THURSDAY))

    @classmethod
    def last_complete(cls, local_day: dt.date) -> Quarter:
        """The newest quarter whose last week has ended by ``local_day`` (a date in the
        customer's timezone): on :attr:`ends` of a quarter (a Monday) and after, that quarter."""
        quarter = cls.of_week(local_day - dt.timedelta(days=local_day.weekday()))
        return quarter if quarter.ends <= local_day else quarter.previous()

    def __str__(self) -> str:
        return f"{self.year}-Q{self.number}"

    @property
    def first_day(self) -> dt.date:
        return dt.date(self.year, 3 * self.number - 2, 1)

    @property
    def last_day(self) -> dt.date:
        return self.next().first_day - dt.timedelta(days=1)

    def previous(self) -> Quarter:
        return Quarter(self.year - 1, 4) if self.number == 1 else Quarter(self.year, self.number - 1)

    def next(self) -> Quarter:
        return Quarter(self.year + 1, 1) if self.number == 4 else Quarter(self.year, self.number + 1)

    def months(self) -> list[dt.date]:
        """The first days of the quarter's three months."""
        return [dt.date(self.year, 3 * self.number - 2 + k, 1) for k in range(3)]

    def week_ofs(self) -> list[dt.date]:
        """The Mondays of the quarter's weeks, oldest first: every week whose Thursday is in it."""
        first_thursday = self.first_day + dt.timedelta(days=(THURSDAY - self.first_day.weekday()) % 7)
        monday = first_thursday - dt.timedelta(days=THURSDAY)
        weeks = []
        while monday + dt.timedelta(days=THURSDAY) <= self.last_day:
            weeks.append(monday)
            monday += dt.timedelta(days=7)
        return weeks

    @property
    def ends(self) -> dt.date:
        """The Monday after the quarter's last week: its last week ends there at 00:00 local."""
        return self.week_ofs()[-1] + dt.timedelta(days=7)

    def label(self) -> str:
        """"Q3 2026 (July – September)"."""
        first, last = self.months()[0], self.months()[-1]
        return f"Q{self.number} {self.year} ({first:%B} – {last:%B})"
