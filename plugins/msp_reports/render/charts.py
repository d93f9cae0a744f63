"""The trend charts: four metrics over the last :data:`TREND_WEEKS` weeks, as inline SVG.

Drawn from the stored snapshots' numbers only, never from source text. A week that is not on
record, whose source failed, or that only some of its systems answered is a gap ("n/a",
"part"), never a zero. The SVG replaces the ``msp-block`` fence of the Markdown after Markdown →
HTML, and WeasyPrint draws its labels as real text.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from markupsafe import Markup

from msp_reports.reconcile import Reconciled
from msp_reports.render.branding import Branding, load_branding
from msp_reports.render.recovery import rto_met_pct
from msp_reports.render.sections import section_state
from msp_reports.render.templates import (
    CHART_TEMPLATE, FONT_FAMILY, TEMPLATES_DIR, TRENDS_TEMPLATE, page_environment,
)

if TYPE_CHECKING:
    from msp_reports.snapshot import WeeklySnapshot

TREND_WEEKS = 8  # the charts show this week and the seven before it


@dataclass(frozen=True)
class TrendMetric:
    key: str
    title: str
    unit: str
    digits: int
    kind: Literal["line", "bar"]
    domain: str
    value: Callable[[WeeklySnapshot], float | None]


def _complete(section: Any) -> Any:
    """Data only when every system of the section answered: a partial week is not comparable."""
    return section.data if section_state(section) == "ok" else None


def _uptime_value(snap: WeeklySnapshot) -> float | None:
    data = _complete(snap.uptime)
    return None if data is None else data.overall_pct


def _backlog_value(snap: WeeklySnapshot) -> float | None:
    data = _complete(snap.tickets)
    return None if data is None else data.backlog_end


def _secure_score_value(snap: WeeklySnapshot) -> float | None:
    data = _complete(snap.security)
    return None if data is None else data.secure_score_pct


TREND_METRICS = (
    TrendMetric("uptime", "Uptime, average of all rows", "%", 2, "line", "uptime", _uptime_value),
    TrendMetric("backlog", "Ticket backlog at week end", "", 0, "bar", "tickets", _backlog_value),
    TrendMetric("secure_score", "Secure score", "%", 1, "line", "security", _secure_score_value),
    TrendMetric("recovery", "Recovery proven within RTO", "%", 1, "line", "backups", rto_met_pct),
)


@dataclass(frozen=True)
class Trend:
    """One metric over the chart's weeks, oldest first; ``None`` where there is no comparable figure.

    ``partial`` marks the weeks whose section only some of its systems answered. ``labels``
    names every slot instead of every other week's Monday (the QBR's monthly bars: "Jul 2026").
    """

    metric: TrendMetric
    weeks: list[dt.date]
    values: list[float | None]
    partial: list[bool]
    labels: list[str] | None = None


def trends(rec: Reconciled, history: Iterable[WeeklySnapshot] | None = None) -> list[Trend]:
    """The last ``TREND_WEEKS`` weeks from the stored snapshots; a missing, failed or partial week is a gap."""
    current = rec.snapshot
    weeks = [current.week_of - dt.timedelta(days=7 * n) for n in range(TREND_WEEKS - 1, -1, -1)]
    by_week = {s.week_of: s for s in history or () if s.customer == current.customer}
    by_week[current.week_of] = current
    found = [by_week.get(w) for w in weeks]
    return [Trend(m, weeks, [None if s is None else m.value(s) for s in found],
                  [s is not None and section_state(getattr(s, m.domain)) == "partial" for s in found])
            for m in TREND_METRICS]


# The chart canvas in SVG units (4 per millimetre when drawn 55 mm wide) and its plot area.
CHART_SIZE = (220, 124)
_PLOT_LEFT, _PLOT_TOP, _PLOT_RIGHT, _PLOT_BOTTOM = 38, 12, 214, 100


def _axis(trend: Trend) -> tuple[float, float]:
    present = [v for v in trend.values if v is not None]
    if trend.metric.kind == "bar":
        top = max(present, default=0)
        hi = next((c for c in (4, 10, 20, 40, 100, 200, 400, 1000) if c >= top), 2 * math.ceil(top / 2))
        return 0.0, float(hi)
    if trend.metric.key.startswith("uptime"):
        return float(min(math.floor(min(present, default=99)), 99)), 100.0
    lo = min(max(10 * math.floor(min(present, default=0) / 10), 0), 90)
    hi = min(max(10 * math.ceil(max(present, default=100) / 10), lo + 10), 100)
    return float(lo), float(hi)


def _tick(value: float, unit: str) -> str:
    return f"{value:g}{unit}"


def _chart(trend: Trend, colour: str) -> dict[str, Any]:
    """Coordinates for chart.svg.j2: numbers from the snapshots only, never source text."""
    lo, hi = _axis(trend)
    n = len(trend.weeks)
    slot = (_PLOT_RIGHT - _PLOT_LEFT) / n

    def x(i: int) -> float:
        return round(_PLOT_LEFT + slot * (i + 0.5), 1)

    def y(v: float) -> float:
        v = min(max(v, lo), hi)
        return round(_PLOT_BOTTOM - (v - lo) / (hi - lo) * (_PLOT_BOTTOM - _PLOT_TOP), 1)

    unit, digits = trend.metric.unit, trend.metric.digits
    chart: dict[str, Any] = {
        "title": trend.metric.title, "width": CHART_SIZE[0], "height": CHART_SIZE[1], "colour": colour,
        "left": _PLOT_LEFT, "right": _PLOT_RIGHT, "bottom": _PLOT_BOTTOM, "font": FONT_FAMILY,
        "grid": [{"y": y(v), "label": _tick(v, unit)} for v in (lo, (lo + hi) / 2, hi)],
        "weeks": ([{"x": x(i), "label": label} for i, label in enumerate(trend.labels)] if trend.labels is not None
                  else [{"x": x(i), "label": f"{w.day} {w:%b}"} for i, w in enumerate(trend.weeks) if (n - 1 - i) % 2 == 0]),
        "gaps": [{"x": x(i), "y": _PLOT_BOTTOM - 4, "label": "part" if trend.partial[i] else "n/a"}
                 for i, v in enumerate(trend.values) if v is None],
        "bars": [], "lines": [], "points": [],
        # more than TREND_WEEKS slots (the QBR's 13 weeks): smaller marks, so neighbours do not touch
        "gap_font": 7.5 if n <= TREND_WEEKS else 5.5, "value_font": 8 if n <= TREND_WEEKS else 6.5,
    }
    if trend.metric.kind == "bar":
        width = round(slot * 0.6, 1)
        for i, v in enumerate(trend.values):
            if v is not None:
                top = y(v)
                chart["bars"].append({"x": round(x(i) - width / 2, 1), "y": top, "width": width,
                                      "height": round(_PLOT_BOTTOM - top, 1), "cx": x(i),
                                      "label": f"{v:,.{digits}f}", "label_y": round(top - 2.5, 1)})
    else:
        run: list[str] = []
        for i, v in enumerate([*trend.values, None]):
            if v is None:
                if len(run) > 1:
                    chart["lines"].append(" ".join(run))
                run = []
                continue
            run.append(f"{x(i)},{y(v)}")
            chart["points"].append({"x": x(i), "y": y(v), "current": i == n - 1})
    return chart


def chart_svg(trend: Trend, colour: str) -> Markup:
    """One chart as inline SVG (chart.svg.j2), from the trend's numbers only."""
    env = page_environment(TEMPLATES_DIR.resolve())
    return Markup(env.get_template(CHART_TEMPLATE).render(c=_chart(trend, colour)))


def _trend_notes(trend: Trend) -> list[str]:
    unit, digits = trend.metric.unit, trend.metric.digits
    present = [v for v in trend.values if v is not None]
    current = trend.values[-1]
    if current is not None:
        notes = [f"This week: {current:,.{digits}f}{unit}"]
    else:
        notes = ["This week: " + ("partial data, not plotted" if trend.partial[-1] else "no data")]
    low, high = (f"{v:,.{digits}f}" for v in (min(present, default=0), max(present, default=0)))
    if len(present) > 1 and low != high:
        notes.append(f"Range over {len(trend.weeks)} weeks: {low}–{high}{unit}")
    elif len(present) > 1:
        notes.append(f"Same in all {len(present)} weeks on record")
    return notes


def has_data(trend: Trend) -> bool:
    """Whether any week of the trend has a figure; without one there is no chart to draw."""
    return any(v is not None for v in trend.values)


def empty_note(trend: Trend) -> str:
    """What stands in place of a chart with no figure in any of its weeks."""
    why = "only some of the systems answered" if any(trend.partial) else "the source reported no figure"
    return f"No data: {why} in any of the last {len(trend.weeks)} weeks."


def trends_html(rec: Reconciled, history: Iterable[WeeklySnapshot] | None = None,
                branding: Branding | None = None) -> Markup:
    """Small inline SVG charts, three to a row; their text is real text in the PDF."""
    branding = branding or load_branding()
    series = trends(rec, history)
    env = page_environment(TEMPLATES_DIR.resolve())
    # a metric with no figure in any week is said in words, not drawn as a row of "n/a" marks
    charts = [{"title": t.metric.title, "notes": _trend_notes(t) if has_data(t) else [],
               "svg": chart_svg(t, branding.accent_colour) if has_data(t) else None,
               "empty": None if has_data(t) else empty_note(t)} for t in series]
    earlier = sum(v is not None for t in series for v in t.values[:-1])
    return Markup(env.get_template(TRENDS_TEMPLATE).render(
        charts=charts, weeks=TREND_WEEKS, no_history=earlier == 0, any_partial=any(any(t.partial) for t in series)))
