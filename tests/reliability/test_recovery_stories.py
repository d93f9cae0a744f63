"""The three recovery (RTO) demo stories, end to end through the pipeline against the simulators:
each appears in its own customer's executive summary and in no other customer's report, and
every report shows RTO posture per backed-up asset.

- ECHO (Veeam): the SureBackup of ECHO-DC01 failed this week;
- JULT (Datto): no recovery test of any agent for 40 days;
- KILO (Veeam): the restore of KILO-DC01 took 11 h 5 min against its 8 h RTO.
"""

from __future__ import annotations

import pytest

from tests.factories import WEEK_OF

from msp_reports import pipeline
from msp_reports.store import ReportStore

from .conftest import REGISTRY, demo_connections_for

STORIES = {
    "ECHO": ("recovery_failed", "The recovery test of ECHO-DC01 failed"),
    "JULT": ("recovery_unverified", "has not had a recovery test for 40 days"),
    "KILO": ("rto_missed", "Recovering KILO-DC01 took 11.1 h, longer than its 8 h recovery time objective"),
}


@pytest.fixture(scope="module")
def reports(sim, tmp_path_factory):
    """Every demo customer's week extracted, reconciled and rendered (Markdown and flags)."""
    from msp_reports.settings import Settings
    from devtools.simulators.server import connection_env

    root = tmp_path_factory.mktemp("stories")
    settings = Settings(registry_path=Settings.load().registry_path, store_root=str(root / "store"),
                        archive_root=str(root / "archive"))
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in connection_env(demo_connections_for(sim)).items():
            mp.setenv(key, value)
        for customer in REGISTRY.customers:
            item = {"customer": customer.code, "week_of": WEEK_OF.isoformat()}
            pipeline.extract(settings, item, "backups")
            pipeline.build_snapshot(settings, item)
            pipeline.render(settings, item)
            store = ReportStore(settings.store_root)
            out[customer.code] = (store.read_text(customer.code, WEEK_OF, "report.md"),
                                  store.read_json(customer.code, WEEK_OF, "reconciled.json")["flags"])
    return out


def _summary(markdown: str) -> str:
    start = markdown.index("## Executive summary")
    return markdown[start:markdown.index("\n## ", start + 5)]


@pytest.mark.parametrize("code", sorted(STORIES))
def test_each_story_is_in_its_own_customers_summary(reports, code):
    kind, sentence = STORIES[code]
    markdown, flags = reports[code]
    assert kind in {f["kind"] for f in flags}
    assert sentence in " ".join(_summary(markdown).split()), _summary(markdown)


def test_no_other_customer_shows_a_recovery_story(reports):
    for code, (markdown, flags) in reports.items():
        recovery = {f["kind"] for f in flags} & {"recovery_failed", "recovery_unverified", "rto_missed"}
        if code in STORIES:
            assert recovery == {STORIES[code][0]}, (code, recovery)
        else:
            assert not recovery, (code, flags)
            for _, sentence in STORIES.values():
                assert sentence not in markdown


def test_every_report_shows_rto_posture_per_backed_up_asset(reports):
    for code, (markdown, _) in reports.items():
        assert "### Recovery time (RTO)" in markdown, code
        rpo_part, rto_part = markdown.split("### Recovery time (RTO)", 1)
        rto_part = rto_part.split("\n## ", 1)[0]
        rpo_rows = [line for line in rpo_part.split("## Backups", 1)[1].splitlines() if line.startswith(f"| {code}-")]
        rto_rows = [line for line in rto_part.splitlines() if line.startswith(f"| {code}-")]
        assert rto_rows and len(rto_rows) == len(rpo_rows), code  # one RTO row per backed-up asset
        assert all(r.rstrip(" |").endswith(("Yes", "No", "Not verified")) for r in rto_rows), rto_rows
        if code not in STORIES:
            assert all(r.rstrip(" |").endswith("Yes") for r in rto_rows), (code, rto_rows)
