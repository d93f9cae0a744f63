"""The QBR's Markdown: the quarter's figures (:mod:`.figures`) as the rows and sentences of ``qbr.md.j2``.

The template renders in the weekly report's Jinja environment, whose ``finalize`` hook escapes
every value for Markdown; what passes through as written is :class:`~msp_reports.escaping.Md`:
the number filters' output, and our own sentences, escaped whole by :func:`_md` (so a site name
or an incident title quoted in one is literal too). A missing figure prints "n/a", never zero.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from msp_reports.delivery.archive import archive_name
from msp_reports.escaping import Md, clean_text, escape_markdown
from msp_reports.qbr.figures import QUARTER, QuarterFigures, Ratio, StoredWeek, month_key
from msp_reports.reconcile import SEVERITY_ORDER
from msp_reports.registry import Customer, Msp
from msp_reports.render.filters import local_time, num, pct, signed
from msp_reports.render.markdown import _environment
from msp_reports.render.recovery import RTO_LABELS
from msp_reports.render.sections import DOMAIN_LABELS, system_label
from msp_reports.render.tables import LongTable, cut
from msp_reports.render.templates import TEMPLATES_DIR
from msp_reports.render.wording import METRIC_DEFINITIONS
from msp_reports.snapshot import DOMAINS

QBR_TEMPLATE = "qbr.md.j2"
NARRATIVE_LIMIT = 6000
STATE_LABELS = {"ok": "Yes", "missing": "Missing", "invalid": "Not usable"}
QBR_DEFINITIONS: dict[str, str] = {
    "Quarter": "The report weeks (Monday 00:00 to Monday 00:00 in your timezone) whose Thursday falls in the "
               "calendar quarter, so every week counts in exactly one quarter: 13 weeks in most quarters, 12 or "
               "14 in some.",
    "Month": "A week counts in the month that holds its Thursday, so each month has 4 or 5 whole weeks.",
    "Weeks on record": "The weekly reports stored for the quarter. A missing week, or one whose source did not "
                       "answer, is shown as such and left out of every sum and average: never counted as zero.",
    "Uptime % (quarter)": "1 − the downtime of a site and device class ÷ the time it was watched, both summed "
                          "over the weeks of the period with a figure (each week its own length). Not an average "
                          "of weekly percentages. All services: the same over every row.",
    "Target met (quarter)": "Yes when the quarter's uptime is at or above the row's target (its newest weekly "
                            "target).",
    "Backlog at month end": "Tickets open at the end of the month's last week on record.",
    "Within RPO (quarter)": "Asset-weeks whose last good backup was within the recovery point objective at the "
                            "end of the week, of all asset-weeks on record.",
    "Incidents raised": "Security incidents created during a week on record, each counted once however many "
                        "weekly reports listed it.",
}


def _md(text: str) -> Md:
    """One of our sentences (which may quote source text): every character literal."""
    return escape_markdown(text, 4000)


def _day(day: dt.date) -> str:
    return f"{day:%d %b %Y}"


def _month_label(month: dt.date) -> str:
    return f"{month:%b %Y}"


def _ratio_pct(r: Ratio) -> Md:
    return pct(r.pct, 3) if r.pct is not None and r.pct < 100 else pct(r.pct, 2)


def _weeks_list(weeks: list[StoredWeek]) -> str:
    return ", ".join(f"{w.week_of:%d %b}" for w in weeks)


def _domain_note(fig: QuarterFigures, domain: str) -> Md:
    """Which usable weeks are left out of a section, and why."""
    skipped = fig.unavailable(domain)
    if not fig.usable_weeks:
        return Md("")
    failed = [w for w in skipped if w.domain_state(domain) == "failed"]
    partial = [w for w in skipped if w.domain_state(domain) == "partial"]
    parts = []
    if failed:
        systems = sorted({system_label(w.snapshot.sections()[domain].status.system) for w in failed})
        parts.append(f"Data unavailable in the weeks of {_weeks_list(failed)} ({', '.join(systems)} did not answer)")
    if partial:
        parts.append(f"only some systems answered in the weeks of {_weeks_list(partial)}")
    if not parts:
        return Md("")
    tail = ("; those rows' other weeks still count" if domain in ("uptime", "sites") and partial and not failed
            else "; those weeks are left out of the figures below, not counted as zero")
    return Md("> " + _md("; ".join(parts) + tail + "."))


def _coverage(fig: QuarterFigures) -> Md:
    total, usable = len(fig.weeks), fig.usable_weeks
    text = f"Built from {len(usable)} of the quarter's {total} weekly reports."
    missing = [w for w in fig.weeks if w.state == "missing"]
    invalid = [w for w in fig.weeks if w.state == "invalid"]
    if missing:
        text += f" Missing: the weeks of {_weeks_list(missing)} (no weekly report on record)."
    if invalid:
        text += f" Not usable: the weeks of {_weeks_list(invalid)} (the stored figures fail today's checks)."
    if missing or invalid:
        text += " They are shown as missing and left out of every figure, never counted as zero."
    return _md(text)


def _glance(fig: QuarterFigures) -> dict[str, tuple[float | None, int, str, bool]]:
    """The headline figures: value, digits, unit, and whether it may be compared with another
    quarter's. A count (tickets, changes, incidents) is a sum over the weeks on record, so it is
    comparable only when every week of the quarter is counted; a rate or a level always is."""
    up = fig.uptime_total[QUARTER]
    rows_with = [line for line in fig.uptime if line.met is not None]
    t, b, s = fig.tickets[QUARTER], fig.backups[QUARTER], fig.security[QUARTER]
    sites = fig.sites_total[QUARTER]
    whole_t, whole_s = t.weeks == len(fig.weeks), s.weeks == len(fig.weeks)
    return {
        "Uptime, all services": (up.pct, 3, "%", True),
        "Services meeting their target": (float(sum(bool(line.met) for line in rows_with)) if rows_with else None,
                                          0, "", True),
        "Tickets opened": (float(t.opened) if t.weeks else None, 0, "", whole_t),
        "Tickets closed": (float(t.closed) if t.weeks else None, 0, "", whole_t),
        "SLA breaches": (float(t.sla_breaches) if t.weeks else None, 0, "", whole_t),
        "Backlog at quarter end": (None if t.backlog_end is None else float(t.backlog_end), 0, "", True),
        "Changes executed": (float(t.changes) if t.weeks else None, 0, "", whole_t),
        "Backups within RPO": (b.rpo_pct, 1, "%", True),
        "Recovery proven within RTO": (b.rto_pct, 1, "%", True),
        "Security incidents raised": (float(s.raised) if s.weeks else None, 0, "", whole_s),
        "Secure score at quarter end": (s.score_end, 1, "%", True),
        "Public-site availability": (sites.pct, 3, "%", True),
    }


def _fmt(value: float | None, digits: int, unit: str) -> Md:
    if value is None:
        return Md("n/a")
    return pct(value, digits) if unit == "%" else num(value, digits)


NOT_COMPARABLE = "weeks missing"


def glance_rows(fig: QuarterFigures, prev: QuarterFigures | None) -> list[dict[str, Any]]:
    now = _glance(fig)
    before = _glance(prev) if prev is not None else {}
    rows = []
    for label, (value, digits, unit, whole) in now.items():
        row = {"label": label, "value": _fmt(value, digits, unit)}
        if prev is not None:
            old, _, _, whole_before = before[label]
            row["previous"] = _fmt(old, digits, unit)
            if value is None or old is None:
                row["change"] = Md("n/a")
            elif not (whole and whole_before):
                row["change"] = Md(NOT_COMPARABLE)
            else:
                row["change"] = signed(value - old, digits, " points" if unit == "%" else "")
        rows.append(row)
    for key, f in (("value", fig), ("previous", prev)):
        if f is not None and rows[1][key] != "n/a":
            rows[1][key] = Md(f"{rows[1][key]} of {sum(line.met is not None for line in f.uptime)}")
    return rows


_UPTIME_TABLE = LongTable("row", "result", lambda r: "target missed" if r.met is False else
                          ("no data" if r.met is None else "target met"),
                          lambda r: {False: 0, None: 1}.get(r.met, 2))
_SITES_TABLE = LongTable("site", "result", lambda r: "no data" if r.periods[QUARTER].pct is None else "measured",
                         lambda r: r.periods[QUARTER].pct if r.periods[QUARTER].pct is not None else -1)


def _uptime_rows(fig: QuarterFigures, months: list[dt.date]) -> tuple[list[dict[str, Any]], Md]:
    shown = cut(fig.uptime, _UPTIME_TABLE)
    rows = [{"site": line.key[0], "device_class": line.key[1], "slo": pct(line.slo_pct, 1),
             "months": [_ratio_pct(line.periods[month_key(m)]) for m in months],
             "quarter": _ratio_pct(line.periods[QUARTER]),
             "met": Md("No data" if line.met is None else ("Yes" if line.met else "No")),
             "weeks_met": Md(f"{line.weeks_met} of {line.weeks_measured}"),
             "downtime": num(line.periods[QUARTER].downtime_seconds / 60, 1)} for line in shown.rows]
    if fig.uptime:
        total = fig.uptime_total
        rows.append({"site": Md("**All services**"), "device_class": Md(""), "slo": Md(""),
                     "months": [_ratio_pct(total[month_key(m)]) for m in months],
                     "quarter": _ratio_pct(total[QUARTER]), "met": Md(""), "weeks_met": Md(""),
                     "downtime": num(total[QUARTER].downtime_seconds / 60, 1)})
    return rows, shown.rest


def _site_rows(fig: QuarterFigures, months: list[dt.date]) -> tuple[list[dict[str, Any]], Md]:
    shown = cut(fig.sites, _SITES_TABLE)
    return [{"site": line.key[0], "address": line.key[1],
             "months": [_ratio_pct(line.periods[month_key(m)]) for m in months],
             "quarter": _ratio_pct(line.periods[QUARTER]),
             "downtime": num(line.periods[QUARTER].downtime_seconds / 60, 1)} for line in shown.rows], shown.rest


def _period_row(label: str, periods: dict[str, Any], months: list[dt.date], value) -> dict[str, Any]:
    def cell(p: Any) -> Md:
        return Md("n/a") if p.weeks == 0 else value(p)
    return {"label": label, "months": [cell(periods[month_key(m)]) for m in months], "quarter": cell(periods[QUARTER])}


def _ticket_rows(fig: QuarterFigures, months: list[dt.date]) -> list[dict[str, Any]]:
    t = fig.tickets
    return [
        _period_row("Weeks on record", t, months, lambda p: num(p.weeks)),
        _period_row("Opened", t, months, lambda p: num(p.opened)),
        _period_row("Closed", t, months, lambda p: num(p.closed)),
        _period_row("SLA breaches", t, months, lambda p: num(p.sla_breaches)),
        _period_row("Backlog at period end", t, months, lambda p: num(p.backlog_end)),
        _period_row("Changes executed", t, months, lambda p: num(p.changes)),
    ]


def _ticket_trend(fig: QuarterFigures, months: list[dt.date]) -> Md:
    counted = [(m, fig.tickets[month_key(m)]) for m in months if fig.tickets[month_key(m)].weeks]
    if len(counted) < 2:
        return Md("")
    (m0, first), (m1, last) = counted[0], counted[-1]
    def move(a: int | None, b: int | None, what: str) -> str:
        if a is None or b is None:
            return ""
        word = "rose" if b > a else ("fell" if b < a else "held")
        return f"{what} {word} from {a:,} in {m0:%B} to {b:,} in {m1:%B}" if word != "held" else f"{what} held at {a:,}"
    parts = [move(first.opened, last.opened, "Tickets opened"), move(first.backlog_end, last.backlog_end,
                                                                   "the backlog at month end"),
             move(first.sla_breaches, last.sla_breaches, "SLA breaches")]
    return _md("; ".join(p for p in parts if p) + ".")


def _backup_rows(fig: QuarterFigures, months: list[dt.date]) -> list[dict[str, Any]]:
    b = fig.backups
    return [
        _period_row("Weeks on record", b, months, lambda p: num(p.weeks)),
        _period_row("Asset-weeks within RPO", b, months,
                    lambda p: Md(f"{p.rpo_met:,} of {p.asset_weeks:,} ({pct(p.rpo_pct, 1)})")),
        _period_row("Asset-weeks with recovery proven within RTO", b, months,
                    lambda p: Md(f"{p.rto_met:,} of {p.asset_weeks:,} ({pct(p.rto_pct, 1)})")),
        _period_row("RTO missed (asset-weeks)", b, months, lambda p: num(p.rto_missed)),
        _period_row("Recovery not verified (asset-weeks)", b, months, lambda p: num(p.rto_not_verified)),
    ]


_ASSET_TABLE = LongTable("asset", "RTO state", lambda a: RTO_LABELS.get(a.rto_state or "", "unknown"),
                         lambda a: ({"missed": 0, "not_verified": 1}.get(a.rto_state or "", 2), a.name))


def _asset_rows(fig: QuarterFigures, tz: str) -> tuple[list[dict[str, Any]], Md]:
    shown = cut(fig.assets, _ASSET_TABLE)
    rows = []
    for a in shown.rows:
        test = "None on record" if a.last_test_at is None else \
            f"{'Passed' if a.last_test_passed else 'Failed'} {local_time(a.last_test_at, tz):%d %b %Y}"
        rows.append({"name": a.name, "rpo": Md(f"{a.rpo_met_weeks} of {a.weeks}"),
                     "rto": Md("—" if a.rto_hours is None else f"{a.rto_hours:g} h"),
                     "state": Md(f"{RTO_LABELS.get(a.rto_state or '', '—')} ({a.last_week:%d %b})"), "test": test})
    return rows, shown.rest


def _security_rows(fig: QuarterFigures, months: list[dt.date]) -> list[dict[str, Any]]:
    s = fig.security
    return [
        _period_row("Weeks on record", s, months, lambda p: num(p.weeks)),
        _period_row("Incidents raised", s, months, lambda p: num(p.raised)),
        _period_row("of which high severity", s, months, lambda p: num(p.high)),
        _period_row("Secure score at period end", s, months, lambda p: pct(p.score_end, 1)),
    ]


def _score_sentence(fig: QuarterFigures) -> Md:
    q = fig.security[QUARTER]
    opened = sum(i.status == "open" for i in fig.incidents)
    text = f"Incidents open at their last weekly report: {opened}."
    if q.score_start is not None and q.score_end is not None:
        text = (f"Secure score went from {q.score_start:.1f}% at the start of the first week on record to "
                f"{q.score_end:.1f}% at the end of the last ({q.score_end - q.score_start:+.1f} points). " + text)
    return _md(text)


_INCIDENT_TABLE = LongTable("incident", "severity", lambda i: i.severity.capitalize(),
                            lambda i: (i.status != "open", ["high", "medium", "low", "informational",
                                                            "unknown"].index(i.severity), i.created_at, i.ref))
_CHANGE_TABLE = LongTable("change", "status", lambda c: c.status)
_FLAG_TABLE = LongTable("finding", "priority", lambda f: f["severity"],
                        lambda f: ({"Critical": 0, "Warning": 1}.get(f["severity"], 2), f["order"]))


def _incident_rows(fig: QuarterFigures) -> tuple[list[dict[str, Any]], Md]:
    """Open ones first, then by severity, then oldest first (as the weekly report orders them)."""
    shown = cut(sorted(fig.incidents, key=_INCIDENT_TABLE.attention), _INCIDENT_TABLE)
    rows = [{"ref": i.ref, "title": i.title, "severity": i.severity.capitalize(), "created_at": i.created_at,
             "weeks": Md(f"{i.first_week:%d %b}" + ("" if i.first_week == i.last_week else f" – {i.last_week:%d %b}")),
             "status": i.status.capitalize()} for i in shown.rows]
    return rows, shown.rest


def _flag_rows(fig: QuarterFigures) -> tuple[list[dict[str, Any]], Md]:
    """One row per finding (kind and subject) reported in consecutive weeks: as first reported, with
    the later weeks that reported it again. A finding that returns after a week without it is a new row."""
    index = {w.week_of: n for n, w in enumerate(fig.weeks)}
    runs: list[list[Any]] = []
    open_runs: dict[tuple[str, str, str], list[Any]] = {}
    for line in sorted(fig.flags, key=lambda fl: fl.week_of):
        key = (line.flag.kind, line.flag.domain, line.flag.subject)
        run = open_runs.get(key)
        if run is not None and index[line.week_of] - index[run[-1].week_of] <= 1:
            run.append(line)
        else:
            open_runs[key] = run = [line]
            runs.append(run)
    items = []
    for n, lines in enumerate(runs):
        first = lines[0].flag
        worst = min((fl.flag.severity for fl in lines), key=lambda sev: SEVERITY_ORDER[sev])
        later = sorted({fl.week_of for fl in lines[1:]} - {lines[0].week_of})
        items.append({"week": f"{lines[0].week_of:%d %b %Y}", "severity": worst.capitalize(),
                      "area": DOMAIN_LABELS.get(first.domain, first.domain), "message": first.message,
                      "again": ", ".join(f"{w:%d %b}" for w in later) or "—", "order": n})
    shown = cut(items, _FLAG_TABLE)
    return sorted(shown.rows, key=lambda r: r["order"]), shown.rest


def _change_rows(fig: QuarterFigures) -> tuple[list[dict[str, Any]], Md, Md]:
    shown = cut(fig.changes, _CHANGE_TABLE)
    counts = Counter(clean_text(c.status, 60) or "not stated" for c in fig.changes)
    by_status = ", ".join(f"{n:,} {s}" for s, n in counts.most_common(5))
    rows = [{"week": f"{c.week_of:%d %b}", "ref": c.ref, "summary": c.summary, "executed_at": c.executed_at,
             "status": c.status} for c in shown.rows]
    return rows, shown.rest, _md(f"({by_status})") if by_status else Md("")


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'} {'was' if n == 1 else 'were'}"


def recommendations(fig: QuarterFigures) -> list[Md]:
    """What we propose for next quarter, from the quarter's figures; every sentence escaped."""
    out: list[str] = []
    missed = [line for line in fig.uptime if line.met is False]
    for line in missed[:5]:
        out.append(f"{line.key[0]} / {line.key[1]} ran at {line.periods[QUARTER].pct:.3f}% against a "
                   f"{line.slo_pct:g}% target: we will review the outages behind it and propose resilience "
                   "improvements.")
    if len(missed) > 5:
        out.append(f"{len(missed) - 5} more services missed their target over the quarter; we will review them with you.")
    months = [fig.tickets[month_key(m)] for m in fig.quarter.months() if fig.tickets[month_key(m)].weeks]
    if len(months) >= 2 and months[-1].backlog_end is not None and months[0].backlog_end is not None \
            and months[-1].backlog_end > months[0].backlog_end:
        out.append(f"The ticket backlog grew from {months[0].backlog_end} to {months[-1].backlog_end} over the "
                   "quarter: we will agree a plan to bring it down.")
    if fig.tickets[QUARTER].sla_breaches:
        n = fig.tickets[QUARTER].sla_breaches
        out.append(f"{n:,} {'ticket' if n == 1 else 'tickets'} missed {'its' if n == 1 else 'their'} SLA: we will "
                   "review the causes by priority.")
    late = sorted((a for a in fig.assets if a.rpo_met_weeks < a.weeks), key=lambda a: (a.rpo_met_weeks - a.weeks, a.name))
    if late:
        names = ", ".join(f"{a.name} ({a.weeks - a.rpo_met_weeks} of {a.weeks} weeks)" for a in late[:3])
        more = f" and {len(late) - 3} more assets" if len(late) > 3 else ""
        out.append(f"Backups were outside their recovery point objective for {names}{more}: we will fix the "
                   "causes and confirm a verified recovery point each week.")
    not_proven = [a for a in fig.assets if a.rto_state in ("missed", "not_verified")]
    if not_proven:
        names = ", ".join(a.name for a in not_proven[:4]) + (f" and {len(not_proven) - 4} more" if len(not_proven) > 4 else "")
        out.append(f"Recovery within its RTO is not proven for {names} at the last week on record: we will run "
                   "and time recovery tests next quarter.")
    q = fig.security[QUARTER]
    if q.score_start is not None and q.score_end is not None and q.score_end < q.score_start:
        out.append("Your secure score fell over the quarter: we will propose the settings that restore it.")
    still_open = [i for i in fig.incidents if i.status == "open"]
    if still_open:
        out.append(f"{_plural(len(still_open), 'security incident')} still open at their last report: we will "
                   "close them out and report how.")
    for line in [x for x in fig.sites if x.periods[QUARTER].pct is not None and x.periods[QUARTER].pct < 99.9][:3]:
        out.append(f"{line.key[0]} was available {line.periods[QUARTER].pct:.3f}% of the quarter: we will review "
                   "its hosting and monitoring with you.")
    gaps = [d for d in DOMAINS if fig.unavailable(d)]
    missing = [w for w in fig.weeks if w.state != "ok"]
    if gaps or missing:
        out.append("Some weeks' figures are missing or were unavailable: we will make sure every data feed "
                   "reports each week.")
    if not out:
        out.append("Keep the current patching and backup-verification schedule, and review capacity and "
                   "lifecycle risks with us for the coming year.")
    return [_md(s) for s in out]


def _sources_rows(fig: QuarterFigures, code: str) -> list[dict[str, Any]]:
    rows = []
    for w in fig.weeks:
        unavailable = [DOMAIN_LABELS[d] for d in DOMAINS if w.state == "ok" and w.domain_state(d) != "ok"]
        rows.append({"week": w.week_of.isoformat(),
                     "file": archive_name(code, w.week_of) if w.state == "ok" else "—",
                     "state": STATE_LABELS[w.state], "unavailable": ", ".join(unavailable) or "—",
                     "sha": w.snapshot_sha256[:16] if w.snapshot_sha256 else "—"})
    return rows


def _definitions() -> dict[str, Md]:
    # the weekly "Uptime %" (whose all-rows figure is a plain mean) is replaced by "Uptime % (quarter)"
    keep = ("Downtime (min)", "SLO met", "Tickets opened / closed", "SLA breach", "Backlog",
            "Change executed", "RPO met", "RTO", "Last verified recovery", "RTO met", "Open incident",
            "Secure score", "Site availability")
    terms = {**QBR_DEFINITIONS, **{k: METRIC_DEFINITIONS[k] for k in keep if k in METRIC_DEFINITIONS}}
    return {term: _md(text) for term, text in terms.items()}


def render_markdown(fig: QuarterFigures, prev: QuarterFigures | None, customer: Customer, msp: Msp,
                    narrative: str, timezone: str) -> str:
    months = fig.quarter.months()
    uptime, uptime_rest = _uptime_rows(fig, months)
    sites, sites_rest = _site_rows(fig, months)
    assets, assets_rest = _asset_rows(fig, timezone)
    incidents, incidents_rest = _incident_rows(fig)
    flags, flags_rest = _flag_rows(fig)
    changes, changes_rest, changes_by_status = _change_rows(fig)
    weeks = [w.week_of for w in fig.weeks]
    t = fig.tickets[QUARTER]
    template = _environment(TEMPLATES_DIR.resolve()).get_template(QBR_TEMPLATE)
    return template.render(
        customer=customer, msp=msp, timezone=timezone, quarter_label=fig.quarter.label(),
        quarter_name=str(fig.quarter), previous_name=str(fig.quarter.previous()),
        first_week=f"Mon {weeks[0]:%d %b %Y}", last_week=f"Sun {weeks[-1] + dt.timedelta(days=6):%d %b %Y}",
        week_count=len(weeks),
        months=[Md(_month_label(m)) for m in months],
        coverage=_coverage(fig), headlines=[_md(h) for h in headlines(fig)[1:]], glance=glance_rows(fig, prev),
        previous=prev is not None,
        previous_coverage=Md("") if prev is None else _md(
            f"{fig.quarter.previous()} figures from {len(prev.usable_weeks)} of its {len(prev.weeks)} weekly reports. "
            f"Counts (tickets, changes, incidents) are sums over the weeks on record, so their change reads "
            f"\"{NOT_COMPARABLE}\" unless both quarters have every week counted."),
        narrative=narrative[:NARRATIVE_LIMIT] if narrative and narrative.strip() else "",
        notes={d: _domain_note(fig, d) for d in DOMAINS},
        uptime=uptime, uptime_rest=uptime_rest,
        tickets_on_record=t.weeks > 0, ticket_rows=_ticket_rows(fig, months), ticket_trend=_ticket_trend(fig, months),
        changes_total=t.changes if t.weeks else None, changes=changes, changes_rest=changes_rest,
        changes_by_status=changes_by_status,
        backups_on_record=fig.backups[QUARTER].weeks > 0, backup_rows=_backup_rows(fig, months),
        assets=assets, assets_rest=assets_rest,
        security_on_record=fig.security[QUARTER].weeks > 0, security_rows=_security_rows(fig, months),
        score_sentence=_score_sentence(fig), incidents=incidents, incidents_rest=incidents_rest,
        sites=sites, sites_rest=sites_rest, flags=flags, flags_rest=flags_rest,
        flags_left_out=_md(f"The findings of the weeks of {_weeks_list(unflagged)} are not shown: that week's stored "
                           "findings are missing or no longer match its figures.") if (unflagged := [
                               w for w in fig.weeks if w.state == "ok" and w.flags_note]) else Md(""),
        commentaries=[{"week": _day(w.week_of), "text": w.commentary} for w in fig.weeks if w.commentary],
        recommendations=recommendations(fig), sources=_sources_rows(fig, customer.code),
        definitions=_definitions(),
    )


def headlines(fig: QuarterFigures) -> list[str]:
    """Three plain sentences for the cover note and the card (escaped where they are used)."""
    up, t, b = fig.uptime_total[QUARTER], fig.tickets[QUARTER], fig.backups[QUARTER]
    lines = [f"{len(fig.usable_weeks)} of {len(fig.weeks)} weekly reports on record for the quarter."]
    if up.pct is not None:
        met = sum(line.met is True for line in fig.uptime)
        lines.append(f"Uptime across all services: {up.pct:.3f}%; {met} of "
                     f"{sum(line.met is not None for line in fig.uptime)} services met their target.")
    if t.weeks:
        lines.append(f"{t.opened:,} tickets opened, {t.closed:,} closed, {t.sla_breaches:,} SLA breaches, "
                     f"{t.changes:,} changes executed.")
    if b.asset_weeks:
        lines.append(f"Backups within RPO in {b.rpo_pct:.1f}% of asset-weeks; recovery proven within RTO in "
                     f"{b.rto_pct:.1f}%.")
    return lines
