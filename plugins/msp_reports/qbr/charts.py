"""The QBR's charts: 13-week trends per domain and monthly bars, drawn by the weekly charts' code.

Each is a :class:`msp_reports.render.charts.Trend` drawn by :func:`~msp_reports.render.charts.chart_svg`
(chart.svg.j2), so a week without a figure is a gap marked "n/a", never a zero, exactly as in
the weekly report. Numbers only: no source text reaches a chart.
"""

from __future__ import annotations


from typing import Literal

from markupsafe import Markup

from msp_reports.qbr.figures import QuarterFigures, month_key
from msp_reports.render.branding import Branding
from msp_reports.render.charts import Trend, TrendMetric, chart_svg, has_data
from msp_reports.render.templates import TEMPLATES_DIR, page_environment

QBR_CHARTS_TEMPLATE = "qbr_charts.html.j2"
WEEKLY_KEYS = ("uptime", "uptime_sites", "opened", "backlog", "breaches", "incidents", "rpo", "recovery", "secure_score")


def _metric(key: str, title: str, unit: str, digits: int, kind: Literal["line", "bar"], domain: str) -> TrendMetric:
    return TrendMetric(key, title, unit, digits, kind, domain, lambda snap: None)


def weekly_trends(fig: QuarterFigures) -> list[Trend]:
    weeks = [w.week_of for w in fig.weeks]
    series = [  # three to a row: availability, the service desk, backups and security
        (_metric("uptime", "Uptime, all services", "%", 2, "line", "uptime"), fig.uptime_weekly),
        (_metric("uptime_sites", "Public-site availability", "%", 2, "line", "sites"), fig.sites_weekly),
        (_metric("opened", "Tickets opened per week", "", 0, "bar", "tickets"), fig.opened_weekly),
        (_metric("backlog", "Ticket backlog at week end", "", 0, "bar", "tickets"), fig.backlog_weekly),
        (_metric("breaches", "SLA breaches per week", "", 0, "bar", "tickets"), fig.breaches_weekly),
        (_metric("incidents", "Security incidents raised per week", "", 0, "bar", "security"), fig.incidents_weekly),
        (_metric("rpo", "Backups within RPO", "%", 1, "line", "backups"), fig.rpo_weekly),
        (_metric("recovery", "Recovery proven within RTO", "%", 1, "line", "backups"), fig.rto_weekly),
        (_metric("secure_score", "Secure score", "%", 1, "line", "security"), fig.score_weekly),
    ]
    partial = [[w.state == "ok" and w.domain_state(m.domain) == "partial" for w in fig.weeks] for m, _ in series]
    # every third Monday is named (13 labels do not fit under a 55 mm chart), the last week always
    labels = [f"{w.day} {w:%b}" if (len(weeks) - 1 - i) % 3 == 0 else "" for i, w in enumerate(weeks)]
    return [Trend(m, weeks, values, p, labels=labels) for (m, values), p in zip(series, partial)]


def monthly_bars(fig: QuarterFigures) -> list[Trend]:
    months = fig.quarter.months()
    labels = [f"{m:%b %Y}" for m in months]

    def values(attr: str) -> list[float | None]:
        out = []
        for m in months:
            period = fig.tickets[month_key(m)]
            out.append(float(getattr(period, attr)) if period.weeks else None)
        return out

    bars = [
        (_metric("m_opened", "Tickets opened per month", "", 0, "bar", "tickets"), values("opened")),
        (_metric("m_breaches", "SLA breaches per month", "", 0, "bar", "tickets"), values("sla_breaches")),
        (_metric("m_changes", "Changes executed per month", "", 0, "bar", "tickets"), values("changes")),
    ]
    return [Trend(m, months, v, [False] * len(months), labels=labels) for m, v in bars]


def quarter_over_quarter(fig: QuarterFigures, prev: QuarterFigures) -> list[Trend]:
    """Six months side by side: the previous quarter's three, then this quarter's."""
    months = prev.quarter.months() + fig.quarter.months()
    labels = [f"{m:%b}" for m in months]
    by_month = {month_key(m): f for f in (prev, fig) for m in f.quarter.months()}

    def values(get) -> list[float | None]:
        return [get(by_month[month_key(m)], month_key(m)) for m in months]

    def opened(f: QuarterFigures, key: str) -> float | None:
        return float(f.tickets[key].opened) if f.tickets[key].weeks else None

    series = [
        (_metric("uptime_q", "Uptime per month, all services", "%", 2, "line", "uptime"),
         values(lambda f, k: f.uptime_total[k].pct)),
        (_metric("q_opened", "Tickets opened per month", "", 0, "bar", "tickets"), values(opened)),
        (_metric("q_rpo", "Backups within RPO per month", "%", 1, "line", "backups"),
         values(lambda f, k: f.backups[k].rpo_pct)),
    ]
    return [Trend(m, months, v, [False] * len(months), labels=labels) for m, v in series]


def _notes(trend: Trend) -> list[str]:
    unit, digits = trend.metric.unit, trend.metric.digits
    present = [v for v in trend.values if v is not None]
    notes = []
    if trend.metric.key in WEEKLY_KEYS:
        shown = len(present)
        notes.append(f"{shown} of {len(trend.values)} weeks with a figure")
    if present and trend.metric.kind == "line":
        low, high = min(present), max(present)
        notes.append(f"Range: {low:,.{digits}f}–{high:,.{digits}f}{unit}" if low != high
                     else f"{low:,.{digits}f}{unit} in every week with a figure")
    return notes


def charts_html(trends: list[Trend], branding: Branding, legend: str) -> Markup:
    env = page_environment(TEMPLATES_DIR.resolve())
    charts = [{"title": t.metric.title, "notes": _notes(t) if has_data(t) else [],
               "svg": chart_svg(t, branding.accent_colour) if has_data(t) else None,
               "empty": None if has_data(t) else "No figure in any week of the quarter."} for t in trends]
    return Markup(env.get_template(QBR_CHARTS_TEMPLATE).render(charts=charts, legend=legend))


WEEKLY_LEGEND = ("One mark per week (labels are the Monday each week starts). n/a: no figure that week, because "
                 "no report is on record or its source did not answer; part: only some of the systems answered. "
                 "A gap is never a zero.")
MONTHLY_LEGEND = ("Sums of the weekly reports of each month (a week counts in the month of its Thursday); a month "
                  "without any week on record has no bar and reads n/a.")


QOQ_LEGEND = ("The previous quarter's three months, then this quarter's, each summed from its weekly reports; "
              "n/a: no week of that month on record.")


def blocks(fig: QuarterFigures, branding: Branding, prev: QuarterFigures | None = None) -> dict[str, Markup]:
    """The renderer's own HTML for the Markdown's ``msp-block`` fences."""
    out = {"trends": charts_html(weekly_trends(fig), branding, WEEKLY_LEGEND),
           "monthly": charts_html(monthly_bars(fig), branding, MONTHLY_LEGEND)}
    if prev is not None:
        out["quarters"] = charts_html(quarter_over_quarter(fig, prev), branding, QOQ_LEGEND)
    return out


