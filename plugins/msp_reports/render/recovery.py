"""The report's recovery (RTO) posture: the words and figures of the backup section's RTO table,
its summary clause, its appendix definitions and its trend figure.

"RTO met" is never "Yes" without evidence: :meth:`BackupAsset.rto_state` needs a passed test
inside the verification window and a recovery time within the target. Everything else reads
"No" (a failed test, a time over the target) or "Not verified".
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from msp_reports.escaping import Md, escape_markdown
from msp_reports.render.sections import section_data, section_state
from msp_reports.sources.backup_rules import DEFAULT_RECOVERY_DAYS, DEFAULT_RTO_HOURS, ESTIMATED_RECOVERY_MINUTES

if TYPE_CHECKING:
    from msp_reports.snapshot import BackupAsset, WeeklySnapshot

# Within one severity a failed recovery test reads right after a silent backup (wording.KIND_ORDER).
RECOVERY_KIND_ORDER = {"recovery_failed": 1.1, "rto_missed": 1.2, "recovery_unverified": 1.3}
RTO_LABELS = {"met": "Yes", "missed": "No", "not_verified": "Not verified"}
SITE_LABELS = {"local": "on the local appliance", "offsite": "from the offsite copy only"}

# The appendix "How we measure" for recovery, in the customer's words.
RECOVERY_DEFINITIONS: dict[str, str] = {
    "RTO": "Recovery time objective: the longest an asset may take to be running again after a loss, "
           f"agreed per asset (by default {DEFAULT_RTO_HOURS['server']:g} hours for a server and "
           f"{DEFAULT_RTO_HOURS['workstation']:g} hours for a workstation).",
    "Last verified recovery": "The newest recovery test before the end of the week and its result: the "
                              "backup appliance booting the backup and checking its screen (screenshot "
                              "verification), a SureBackup run that starts it in an isolated lab and tests it, "
                              "or a real restore.",
    "Recovery time": "Measured: how long the newest passed test or restore took from start to finish. "
                     "Estimated (est.): where the system measures nothing, our planning figure for where the "
                     f"restore would run ({ESTIMATED_RECOVERY_MINUTES['local'] / 60:g} hour on the local "
                     f"appliance, {ESTIMATED_RECOVERY_MINUTES['offsite'] / 60:g} hours from the offsite copy only).",
    "RTO met": "Yes only when a recovery test passed within the verification window (by default "
               f"{DEFAULT_RECOVERY_DAYS} days) and the recovery time is within the RTO; No when the test failed "
               "or the time is longer; Not verified when there is no recent test or no recovery time. "
               "A backup alone never counts as proof of recovery.",
}


def rto_met(asset: BackupAsset, now: dt.datetime) -> Md:
    """The "RTO met" cell: Yes, No or Not verified."""
    return Md(RTO_LABELS[asset.rto_state(now)])


def recovery_result(asset: BackupAsset, now: dt.datetime) -> Md:
    """The last test's result cell, with a note when it is older than the verification window."""
    test = asset.last_recovery_test
    if test is None:
        return Md("None on record")
    text = escape_markdown(("Passed" if test.passed else "Failed") + f" ({test.status})", 80)
    if not asset.recovery_verified(now):
        text = Md(f"{text}, older than {asset.verify_within_days} days")
    return Md(text)


def _duration(minutes: float) -> str:
    return f"{minutes / 60:.1f} h" if minutes >= 90 else f"{minutes:.0f} min"


def recovery_time(asset: BackupAsset, now: dt.datetime) -> Md:
    """"42 min" (measured), "est. 1 h, local" or "Unknown"."""
    minutes, measured = asset.recovery_minutes(now)
    if minutes is None:
        return Md("Unknown")
    if measured:
        return Md(_duration(minutes))
    site = {"local": "local", "offsite": "offsite only"}.get(asset.restore_site or "", "")
    return Md(f"est. {_duration(minutes)}" + (f", {site}" if site else ""))


def rto_target(asset: BackupAsset) -> Md:
    return Md("—" if asset.rto_hours is None else f"{asset.rto_hours:g} h")


def rto_counts(snap: WeeklySnapshot) -> dict[str, int]:
    """Assets per RTO state at week end; backups must have data."""
    counts = {"met": 0, "missed": 0, "not_verified": 0}
    for asset in section_data(snap.backups).assets:
        counts[asset.rto_state(snap.week_end)] += 1
    return counts


def recovery_clause(snap: WeeklySnapshot) -> str | None:
    """The executive summary's clause, e.g. "recovery proven within its RTO for 3 of 4 assets,
    1 not verified in 30 days"; ``None`` without backup data."""
    data = section_data(snap.backups)
    if data is None or not data.assets:
        return None
    counts = rto_counts(snap)
    total = len(data.assets)
    clause = f"recovery proven within its recovery time objective for {counts['met']} of {total}"
    extras = []
    if counts["missed"]:
        extras.append(f"{counts['missed']} failed its test or took too long")
    if counts["not_verified"]:
        days = sorted({a.verify_within_days for a in data.assets})
        extras.append(f"{counts['not_verified']} not verified in {'/'.join(map(str, days))} days")
    return clause + (f" ({', '.join(extras)})" if extras else "")


def rto_met_pct(snap: WeeklySnapshot) -> float | None:
    """The trend figure: the share of backed-up assets whose RTO was met (with evidence) at week
    end; ``None`` for a week without complete backup data or without any RTO posture stored."""
    if section_state(snap.backups) != "ok":
        return None
    assets = snap.backups.data.assets if snap.backups.data is not None else []
    if not assets or all(a.rto_hours is None for a in assets):
        return None
    met = sum(a.rto_state(snap.week_end) == "met" for a in assets)
    return round(100 * met / len(assets), 1)
