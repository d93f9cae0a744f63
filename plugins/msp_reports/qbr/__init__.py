"""The quarterly business review (QBR) pack: a quarter's story from the archived weekly reports.

Every week the pipeline freezes ``snapshot.json`` beside the report it sent. A QBR pack is built
from those snapshots only (``<CUSTOMER>/<week_of>/snapshot.json``, with the week's
``reconciled.json`` flags and ``commentary.md``), so every figure traces to the weekly report it
came from:

- :mod:`.quarter`: :class:`Quarter` and its weeks. A week belongs to the quarter and the month
  that contain its Thursday (ISO style): 13 weeks in most quarters, 14 or 12 in some.
- :mod:`.figures`: the monthly and quarterly figures, summed from raw weekly figures (downtime
  seconds over week seconds, ticket counts, asset-weeks), never averages of percentages; a
  missing week, or a week whose source did not answer, is excluded and shown, never zero.
- :mod:`.charts`: 13-week trends and monthly bars, drawn by the weekly report's chart code.
- :mod:`.markdown`: the rows and sentences of ``qbr.md.j2``, and the recommendations for next
  quarter; :mod:`.messages`: the subject line, cover note and Teams card.
- :mod:`.pack`: :func:`build_pack` renders the pack through the weekly report's template
  environment (every source value escaped), page template, branding and WeasyPrint with its
  templates-only URL fetcher (nothing remote is read), and returns the same artefacts the weekly
  render publishes (``report.pdf``, ``report.md``, ``subject.txt``, ``cover_note.html``,
  ``teams_card.json``) plus ``sources.json``: each week's snapshot hash (or ``null``: missing),
  the previous quarter's, the narrative's hash and the figures. Same snapshots and narrative →
  identical bytes.

The pack's sections: the quarter at a glance (with the previous quarter when any of its weeks is
on record), the engineer's "quarter in review" narrative, trends, uptime per site and device
class per month and quarter with target attainment, tickets and the backlog per month, changes
executed, backup RPO and RTO posture, security incidents and secure score, public-site
availability, the quarter's flagged events by the week they were reported, the weekly
commentaries, recommendations for next quarter, the weekly reports it was built from, and the
definitions.

:func:`quarter_figures` alone (no rendering) says whether a quarter has any week on record
(``.on_record``), e.g. to skip a customer with nothing to review.

``python -m msp_reports.qbr build --store DIR --registry FILE --customer CODE --quarter 2026-Q3
--out DIR`` writes a pack to a folder.
"""

from msp_reports.qbr.figures import QuarterFigures, quarter_figures
from msp_reports.qbr.pack import SOURCES, build_pack
from msp_reports.qbr.quarter import Quarter

__all__ = ["SOURCES", "Quarter", "QuarterFigures", "build_pack", "quarter_figures"]
