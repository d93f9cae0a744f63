"""Where one customer's week stands: one vocabulary (:class:`WeekState`), derived once.

:func:`derive` is pure: it takes typed records (what :mod:`msp_reports.week_records` reads from
the store) and returns a :class:`WeekStatus`: the state and why, who decided, what each channel
did, the flags and the unavailable data. The roll-up (:func:`msp_reports.pipeline.customer_status`)
and the review page (:func:`msp_reports.review.status.review_state`) only word it, so the same
store reads the same state in both.

Two things the store alone cannot tell, decided here once:

- **No ``render.json``.** A render still running, a render that failed, and a run that died
  before it all leave the same files (a reconciled week and no published version; a publish
  killed part-way also has no ``render.json``, :meth:`ReportStore.publish`). Nothing in the store
  marks a failed render. So the caller says what it knows about the run (:class:`Run`): the
  roll-up runs after every task of the customer's group has ended (``trigger_rule="all_done"``),
  so there it is :attr:`WeekState.RENDER_FAILED` (or :attr:`WeekState.FAILED_BEFORE_RECONCILE`
  without a reconciled week); the review page and the 09:00 list cannot know by themselves, so
  there it is :attr:`WeekState.RENDERING` (or :attr:`WeekState.EXTRACTING`,
  :attr:`WeekState.NOT_RUN`) until the run records that it ended (below).
- **An ``attempted`` receipt.** The ledger writes ``attempted`` before a send and settles it
  after; one left ``attempted`` means the outcome is unknown (an ambiguous error: a timeout, a
  dropped connection, a 5xx; or a process that died mid-send). It is neither "failed" (sending
  again could duplicate) nor silently "not delivered": it is :attr:`Outcome.UNCONFIRMED`, and
  the week :attr:`WeekState.DELIVERY_UNCONFIRMED` (check the channel, then resend). Only a send
  still in flight is told apart: an ``attempted`` receipt with no error noted, younger than
  :data:`SEND_WINDOW`, while the run may still be going, is :attr:`Outcome.SENDING`.

What the run did is recorded by the run itself (``run.json``, :mod:`msp_reports.run_record`;
:class:`RunRecord`): once it says the run *ended* for the week (deliveries skipped because the
report was rejected, the wait expired, or the run ended without releasing the deliveries), the
run is over whatever the caller said, and :attr:`WeekStatus.run_ended` tells the page that no
decision can be acted on until the week is run again. A week with data but no such record (its
history seeded by the demo, or stored before the record was kept) once every possible wait for
it is over (:data:`NO_RUN_AFTER` after its report's Monday) and no report is no run's: it reads
:attr:`WeekState.NOT_RENDERED`, not "rendering" (nothing is at work on it).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from msp_reports.delivery.ledger import CHANNELS

# longer than a deliver task may run (the DAG's execution_timeout is 10 minutes): an attempt
# older than this is not in flight any more
SEND_WINDOW = dt.timedelta(minutes=15)
# after the report's Monday: the approval cut-off ends a wait at most 6 days after the send time, so
# by the next Monday no scheduled run is at work on the week (a manual run records itself: run.json)
NO_RUN_AFTER = dt.timedelta(days=7)


class WeekState(enum.Enum):
    """Every state a customer-week can be in, in the order a week moves through them."""

    NOT_RUN = "not run"  # nothing in the store yet
    EXTRACTING = "extracting"  # some extracts stored, no reconciled week yet
    FAILED_BEFORE_RECONCILE = "failed before reconcile"  # the run is over and nothing was reconciled
    RENDERING = "rendering"  # reconciled, no published report (see the module docstring)
    RENDER_FAILED = "render failed"  # the run is over and no report was published
    NOT_RENDERED = "not rendered"  # data stored, no report, no run at work on it (see the module docstring)
    AWAITING_REVIEW = "awaiting review"  # a report, no decision standing for it
    APPROVED = "approved"  # approved, no channel tried yet: waiting for the send time
    DELIVERING = "delivering"  # delivery started, no channel failed, not all sent yet
    DELIVERED = "delivered"  # sent on every channel
    DELIVERY_UNCONFIRMED = "delivery unconfirmed"  # a send's outcome is unknown: check, then resend
    DELIVERY_FAILED = "delivery failed"  # a channel failed, or reached only some recipients, or was never sent
    REJECTED = "rejected"
    EXPIRED = "expired"  # nobody approved before the cut-off; nothing is sent

    @property
    def undecided(self) -> bool:
        """Nobody has decided on this week's report (yet): what the 09:00 list names."""
        return self in _UNDECIDED


_UNDECIDED = frozenset({WeekState.NOT_RUN, WeekState.EXTRACTING, WeekState.FAILED_BEFORE_RECONCILE,
                        WeekState.RENDERING, WeekState.RENDER_FAILED, WeekState.NOT_RENDERED,
                        WeekState.AWAITING_REVIEW})


class Run(enum.Enum):
    """What the caller knows about the run that produces the week (see the module docstring)."""

    MAY_BE_RUNNING = "may be running"  # the review page, the 09:00 list
    OVER = "over"  # the roll-up: every task of the customer's group has ended


class Outcome(enum.Enum):
    """One channel's delivery."""

    NOT_TRIED = "not tried"  # no receipt
    SENDING = "sending"  # attempted, in flight
    UNCONFIRMED = "unconfirmed"  # attempted, outcome unknown
    FAILED = "failed"  # not accepted; sending again is safe
    PARTIAL = "partial"  # some recipients have it, some were refused
    SENT = "sent"


# ---- the typed records --------------------------------------------------------------------------
def _text(doc: Mapping[str, Any], key: str) -> str:
    return str(doc.get(key) or "")


@dataclass(frozen=True)
class RenderRecord:
    """``render.json``: the published version's hashes."""

    pdf_sha256: str
    snapshot_sha256: str | None = None
    commentary_sha256: str | None = None
    rendered_at: str | None = None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> RenderRecord:
        return cls(pdf_sha256=_text(doc, "pdf_sha256"), snapshot_sha256=doc.get("snapshot_sha256"),
                   commentary_sha256=doc.get("commentary_sha256"), rendered_at=doc.get("rendered_at"))


@dataclass(frozen=True)
class DecisionRecord:
    """One approval record (``approvals/NNNN.json``)."""

    decision: Literal["approve", "reject", "expired"]
    by: str
    reason: str = ""
    via: str = ""
    recorded_at: str = ""
    pdf_sha256: str = ""

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> DecisionRecord:
        return cls(decision=doc["decision"], by=_text(doc, "by"), reason=_text(doc, "reason"),
                   via=_text(doc, "via"), recorded_at=_text(doc, "recorded_at"), pdf_sha256=_text(doc, "pdf_sha256"))


@dataclass(frozen=True)
class Receipt:
    """One channel's ledger receipt (``ledger/<channel>.json``, :mod:`msp_reports.delivery.ledger`)."""

    channel: str
    state: Literal["attempted", "sent", "failed", "partial"]
    error: str = ""
    ambiguous: bool = False  # the send raised an error after which the channel may have accepted it
    attempted_at: dt.datetime | None = None
    delivered_to: tuple[str, ...] = ()
    refused: tuple[tuple[str, str], ...] = ()  # (address, the server's reply), sorted

    @classmethod
    def from_doc(cls, channel: str, doc: Mapping[str, Any]) -> Receipt:
        attempted = doc.get("attempted_at")
        return cls(channel=channel, state=doc["state"], error=_text(doc, "error"),
                   ambiguous=bool(doc.get("ambiguous_at")),
                   attempted_at=dt.datetime.fromisoformat(attempted) if attempted else None,
                   delivered_to=tuple(doc.get("delivered_to") or ()),
                   refused=tuple(sorted((doc.get("refused") or {}).items())))

    def describe(self) -> str:
        """For people: ``sent``, ``failed``, or
        ``partial: 1 of 2 recipients refused (cto@example.com: 550 5.1.1 ...)``."""
        if not self.refused:
            return self.state
        total = len(self.delivered_to) + len(self.refused)
        return (f"{self.state}: {len(self.refused)} of {total} recipients refused ("
                + "; ".join(f"{a}: {r}" for a, r in self.refused) + ")")


@dataclass(frozen=True)
class Flag:
    """One reconcile finding."""

    kind: str
    severity: str
    message: str
    recommendation: str


@dataclass(frozen=True)
class Unavailable:
    """A domain whose data did not come this week, and the error its source gave."""

    domain: str
    error: str


@dataclass(frozen=True)
class ReconciledRecord:
    """What the state needs of ``reconciled.json``."""

    flags: tuple[Flag, ...] = ()
    unavailable: tuple[Unavailable, ...] = ()


@dataclass(frozen=True)
class RunRecord:
    """``run.json``: the last run on the week and how far it got (:mod:`msp_reports.run_record`)."""

    run: str
    phase: Literal["running", "waiting", "ended"]
    since: str | None = None
    outcome: str = ""  # when ended: "rejected", "expired" or "ended"
    reason: str = ""
    at: str = ""

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> RunRecord:
        return cls(run=_text(doc, "run"), phase=doc.get("phase") or "running", since=doc.get("since"),
                   outcome=_text(doc, "outcome"), reason=_text(doc, "reason"), at=_text(doc, "at"))

    @property
    def ended(self) -> bool:
        return self.phase == "ended"

    def way_forward(self) -> str:
        """For people: what the run did and what to do now."""
        if self.outcome == "rejected":
            return f"deliveries skipped in run {self.run} because the report was rejected: re-run the week to send it"
        if self.outcome == "expired":
            return f"the wait for approval expired in run {self.run}: nothing was sent"
        why = f" ({self.reason})" if self.reason else ""
        return f"run {self.run} ended without sending the report{why}: re-run the week to send it"


@dataclass(frozen=True)
class WeekRecords:
    """Everything the week's state is derived from."""

    extracts_stored: bool = False
    reconciled: ReconciledRecord | None = None
    render: RenderRecord | None = None
    decision: DecisionRecord | None = None  # the decision in force for the current render
    voided: DecisionRecord | None = None  # the latest decision, voided by a later change to the report
    delivery_started: bool = False
    receipts: Mapping[str, Receipt] = field(default_factory=dict)
    run: RunRecord | None = None  # ``run.json``: what the last run did with the week
    week_of: dt.date | None = None


# ---- the result ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChannelStatus:
    channel: str
    outcome: Outcome
    receipt: Receipt | None = None


@dataclass(frozen=True)
class WeekStatus:
    """The state and its details; presenters word it."""

    state: WeekState
    reason: str = ""  # why: a rejection's or expiry's reason, what failed; "" when nothing to add
    decision: DecisionRecord | None = None
    voided: DecisionRecord | None = None
    channels: tuple[ChannelStatus, ...] = ()  # one per channel of :data:`CHANNELS`, in that order
    flags: tuple[Flag, ...] = ()
    unavailable: tuple[Unavailable, ...] = ()
    # the run that ended for this week and can no longer act on a decision (None: a run may still)
    run_ended: RunRecord | None = None

    @property
    def actionable(self) -> bool:
        """Whether a decision made now can still be acted on by a run."""
        return self.run_ended is None

    def channels_not_sent(self) -> tuple[ChannelStatus, ...]:
        return tuple(c for c in self.channels if c.outcome is not Outcome.SENT)


def derive(records: WeekRecords, *, run: Run = Run.MAY_BE_RUNNING, now: dt.datetime | None = None) -> WeekStatus:
    """The week's state from its records.

    :param run: what the caller knows about the run (see the module docstring).
    :param now: tells a send in flight from one that stopped (:data:`SEND_WINDOW`); without it an
        ``attempted`` receipt with no error is taken to be in flight while the run may be going.
    """
    ended = records.run if records.run is not None and records.run.ended else None
    if ended is not None:
        run = Run.OVER
    channels = tuple(ChannelStatus(ch, _outcome(records.receipts.get(ch), run, now), records.receipts.get(ch))
                     for ch in CHANNELS)
    expired = records.decision is not None and records.decision.decision == "expired"
    if records.render is None and run is not Run.OVER and not expired and _no_run_any_more(records, now):
        state, reason = WeekState.NOT_RENDERED, "no run is at work on this week"
    else:
        state, reason = _state(records, channels, run)
    rec = records.reconciled or ReconciledRecord()
    return WeekStatus(state=state, reason=reason, decision=records.decision, voided=records.voided,
                      channels=channels, flags=rec.flags, unavailable=rec.unavailable, run_ended=ended)


def _no_run_any_more(records: WeekRecords, now: dt.datetime | None) -> bool:
    """A week with data but no run record, too old for any run to be at work on it (:data:`NO_RUN_AFTER`)."""
    if records.run is not None or records.week_of is None or now is None:
        return False
    if not (records.extracts_stored or records.reconciled is not None or records.render is not None):
        return False  # nothing stored at all: no run ever began, the week is "not run"
    monday = dt.datetime.combine(records.week_of + dt.timedelta(days=7), dt.time(), tzinfo=dt.timezone.utc)
    return now - monday > NO_RUN_AFTER


def _outcome(receipt: Receipt | None, run: Run, now: dt.datetime | None) -> Outcome:
    if receipt is None:
        return Outcome.NOT_TRIED
    if receipt.state != "attempted":
        return Outcome(receipt.state)
    stopped = run is Run.OVER or receipt.ambiguous or bool(receipt.error) or (
        now is not None and receipt.attempted_at is not None and now - receipt.attempted_at > SEND_WINDOW)
    return Outcome.UNCONFIRMED if stopped else Outcome.SENDING


def _state(records: WeekRecords, channels: tuple[ChannelStatus, ...], run: Run) -> tuple[WeekState, str]:
    decision = records.decision
    if decision is not None and decision.decision == "expired":  # an expired week stays expired
        return WeekState.EXPIRED, decision.reason
    if records.render is None:
        return _before_render(records, run)
    if decision is None:
        gone = records.voided
        return WeekState.AWAITING_REVIEW, (f"the {gone.decision} by {gone.by} was voided: the report changed "
                                           "after it" if gone else "")
    if decision.decision == "reject":
        return WeekState.REJECTED, decision.reason
    outcomes = {c.outcome for c in channels}
    if outcomes == {Outcome.SENT}:
        return WeekState.DELIVERED, ""
    problems = "; ".join(f"{c.channel}: {c.outcome.value}" for c in channels if c.outcome is not Outcome.SENT)
    if outcomes & {Outcome.FAILED, Outcome.PARTIAL} or (run is Run.OVER and Outcome.NOT_TRIED in outcomes):
        return WeekState.DELIVERY_FAILED, problems
    if Outcome.UNCONFIRMED in outcomes:
        return WeekState.DELIVERY_UNCONFIRMED, problems
    if records.delivery_started or outcomes & {Outcome.SENT, Outcome.SENDING}:
        return WeekState.DELIVERING, problems
    return WeekState.APPROVED, ""


def _before_render(records: WeekRecords, run: Run) -> tuple[WeekState, str]:
    """No published report: how far the week got, and whether the run can still get further."""
    if records.reconciled is not None:
        if run is Run.OVER:
            return WeekState.RENDER_FAILED, "the run ended without publishing a report"
        return WeekState.RENDERING, ""
    if run is Run.OVER:
        return WeekState.FAILED_BEFORE_RECONCILE, "the run ended before the week was reconciled"
    return (WeekState.EXTRACTING if records.extracts_stored else WeekState.NOT_RUN), ""
