"""Exactly-once delivery per customer, week and channel.

Each channel's receipt lives in the report store as ``ledger/<channel>.json`` and moves
``attempted`` → ``sent`` (or ``failed``). The rules:

- ``sent`` with the same PDF hash: skip (a retry or re-run sends nothing);
- ``sent`` with another hash: refuse; only the resend command may send a different PDF;
- ``failed``: the send raised before the channel accepted it, so sending again is safe;
- an *ambiguous* error (a timeout, a dropped connection, a 5xx: the other side may have acted
  on the request) leaves ``attempted``, with the error noted, and is raised: the retry then
  settles it like a crash (below) instead of sending a second copy;
- ``attempted`` only: the process died mid-send. A channel that can look its message up by
  the idempotency key (``lookup``) settles it; otherwise delivery stops with a message telling
  the operator to check the channel and use the resend command. A duplicate to a customer is
  worse than a late report, so we never guess. The exception is a channel whose write replaces
  a file by name (the archives: ``rewrite_is_safe``): when the lookup does not find the approved
  bytes there, writing again cannot make a second copy, so it does.
- a mail server that refuses some recipients (:class:`RecipientsRefused`) makes a ``partial``
  receipt naming who has the report (``delivered_to``) and who was refused, and why
  (``refused``); all refused is ``failed``. Until the channel is ``sent`` to everyone, every send
  (a retry, a resend, a retry after an interrupted retry) leaves out ``delivered_to``: whoever
  already has the report never gets it twice. Only a resend after a complete delivery sends it
  to everyone again.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Literal, Protocol, get_args

from msp_reports.exceptions import AlreadyDelivered, DeliveryStateUnknown, RecipientsRefused
from msp_reports.store import ReportStore

log = logging.getLogger(__name__)

ChannelName = Literal["email", "teams", "archive"]
CHANNELS: tuple[ChannelName, ...] = get_args(ChannelName)  # every customer's report goes out on these


class Channel(Protocol):
    name: str

    def send(self, idempotency_key: str) -> dict:
        """Deliver; return the receipt (remote id, where it went). Raise if not accepted."""

    def lookup(self, idempotency_key: str) -> dict | None:
        """The receipt of an earlier send with this key, if the channel can tell; else None."""


def idempotency_key(customer: str, week_of: dt.date, channel: str, pdf_sha256: str, attempt: int = 0,
                    kind: str = "weekly-report") -> str:
    """``kind`` keeps one product's keys apart from another's (the QBR pack's are ``qbr.``)."""
    suffix = f".resend{attempt}" if attempt else ""
    return f"{kind}.{customer}.{week_of.isoformat()}.{channel}.{pdf_sha256[:16]}{suffix}"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


# errors raised after the request may have reached the other side, by class name so that no
# client library is imported here (requests, httpx, urllib3, http.client, smtplib, azure-core)
_AMBIGUOUS = {"ReadTimeout", "ReadTimeoutError", "Timeout", "TimeoutException", "WriteTimeout",
              "ServiceResponseTimeoutError", "ServiceResponseError", "RemoteDisconnected", "ConnectionResetError",
              "ConnectionAbortedError", "BrokenPipeError", "ChunkedEncodingError", "ProtocolError",
              "IncompleteRead", "RemoteProtocolError", "ReadError", "SMTPServerDisconnected"}


def ambiguous(exc: BaseException) -> bool:
    """True when a send that raised ``exc`` may still have been accepted (so a resend could
    duplicate): timeouts, connections dropped mid-request, 5xx answers. A refused connection, a
    4xx, a missing connection or a bad argument is unambiguous: nothing was accepted."""
    seen: set[int] = set()
    names = getattr(exc, "network_errors", frozenset())  # a source client's summary of its network error
    if "ConnectionRefusedError" in names:
        return False
    if names & (_AMBIGUOUS | {"TimeoutError"}):
        return True
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ConnectionRefusedError):
            return False
        if isinstance(exc, TimeoutError) or type(exc).__name__ in _AMBIGUOUS:
            return True
        status = getattr(exc, "status", None) or getattr(getattr(exc, "resp", None), "status", None)
        if isinstance(status, int) and status >= 500:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def describe(receipt: dict) -> str:
    """One channel's state for people (the roll-up): ``sent``, ``failed``, or
    ``partial: 1 of 2 recipients refused (cto@example.com: 550 5.1.1 ...)``."""
    refused = receipt.get("refused") or {}
    if not refused:
        return receipt["state"]
    total = len(receipt.get("delivered_to") or []) + len(refused)
    return (f"{receipt['state']}: {len(refused)} of {total} recipients refused ("
            + "; ".join(f"{a}: {r}" for a, r in sorted(refused.items())) + ")")


def _delivered_so_far(current: dict | None) -> list[str]:
    """Who already has this report through the channel, unless it went to everyone (then a resend
    sends it to everyone again, on purpose)."""
    if current is None or current["state"] == "sent":
        return []
    return list(current.get("delivered_to") or [])


class Ledger:
    def __init__(self, store: ReportStore, customer: str, week_of: dt.date, *, kind: str = "weekly-report") -> None:
        self.kind = kind  # the idempotency keys' first part (:func:`idempotency_key`)
        self.store = store
        self.customer = customer
        self.week_of = week_of
        self.week = store.week(customer, week_of)

    def receipt(self, channel: str) -> dict | None:
        return self.week.receipt(channel)

    def receipts(self) -> dict[str, dict]:
        return {name: self.week.receipt(name) for name in self.week.receipt_channels()}

    def _write(self, channel: str, doc: dict) -> None:
        self.week.write_receipt(channel, doc)

    def send_once(self, channel: Channel, pdf_sha256: str, *, resend: bool = False,
                  note: dict | None = None) -> dict:
        """Send unless already sent; ``resend`` sends again on purpose (``note``: who and why, kept
        in the receipt's history)."""
        name = channel.name
        current = self.receipt(name)
        history = current.get("history", []) if current is not None else []
        if current is not None and not resend:
            settled = self._settle_earlier(channel, current, pdf_sha256, history)
            if settled is not None:
                return settled
        attempt = current.get("resends", 0) + int(resend) if current is not None else 0
        key = idempotency_key(self.customer, self.week_of, name, pdf_sha256, attempt, self.kind)
        record = {"channel": name, "customer": self.customer, "week_of": self.week_of.isoformat(),
                  "state": "attempted", "pdf_sha256": pdf_sha256, "idempotency_key": key,
                  "attempted_at": _now(), "resends": attempt, "history": history}
        if resend and note:
            record["resend_note"] = note
            history = history + [{"state": "resend requested", "at": record["attempted_at"], **note}]
            record["history"] = history
        delivered = _delivered_so_far(current)
        if delivered:
            record["delivered_to"] = delivered
            channel = channel.excluding(delivered)
            if not channel.to:  # everyone the registry names now has it
                earlier = current.get("receipt") or {"remote_id": current.get("remote_id")}
                return self._sent(name, record, earlier, history)
        return self._attempt(channel, record, history)

    def _settle_earlier(self, channel: Channel, current: dict, pdf_sha256: str, history: list) -> dict | None:
        """An earlier receipt that settles this send (the receipt to return), or None to send now.

        Sent: done (a different PDF is refused). Attempted: the channel is asked whether it arrived
        (an interrupted write that replaces by name is simply written again). Failed: a channel
        that can look costs one lookup first, since a 5xx after processing may have been accepted.
        """
        name = channel.name
        if current["state"] == "sent":
            if current["pdf_sha256"] != pdf_sha256:
                raise AlreadyDelivered(
                    f"{self.customer} {self.week_of} {name}: a different PDF was already sent "
                    f"({current['pdf_sha256'][:12]}); use the resend command to send this one"
                )
            log.info("%s %s %s: already sent (%s), skipping", self.customer, self.week_of, name,
                     current.get("remote_id"))
            return current
        if current["state"] == "attempted":
            found = channel.lookup(current["idempotency_key"])
            if found is None and getattr(channel, "rewrite_is_safe", False):
                log.info("%s %s %s: an interrupted write is not there; writing it again (it replaces "
                         "by name, so it cannot duplicate)", self.customer, self.week_of, name)
                return None
            if found is None:
                raise DeliveryStateUnknown(
                    f"{self.customer} {self.week_of} {name}: an earlier send was interrupted and the "
                    f"channel cannot confirm it; check {name} and then run the resend command"
                )
            return self._sent(name, current, found, history)
        if current["state"] == "failed":
            found = channel.lookup(current["idempotency_key"])
            if found is not None:
                return self._sent(name, current, found, history)
        return None

    def _attempt(self, channel: Channel, record: dict, history: list) -> dict:
        """Write the attempt, send, and record what came of it (sent, refused, failed or unknown)."""
        name = channel.name
        self._write(name, record)
        try:
            found = channel.send(record["idempotency_key"])
        except RecipientsRefused as exc:
            raise self._refused(name, record, exc, history) from exc
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
            if ambiguous(exc):  # may have arrived: the retry looks it up, or a person decides
                record.update(error=error, ambiguous_at=_now())
                record["history"] = history + [{"state": "attempted (outcome unknown)", "error": error,
                                                "at": record["ambiguous_at"]}]
                self._write(name, record)
                raise
            self._failed(name, record, error, history)
            raise
        return self._sent(name, record, found, history)

    def _failed(self, name: str, record: dict, error: str, history: list, **detail: object) -> None:
        """``failed``, or ``partial`` when some recipients have the report."""
        state = "partial" if record.get("delivered_to") else "failed"
        record.update(state=state, error=error, failed_at=_now(), **detail)
        record["history"] = history + [{k: record[k] for k in ("state", "error", "failed_at", *detail)}]
        self._write(name, record)

    def _refused(self, name: str, record: dict, exc: RecipientsRefused, history: list) -> RecipientsRefused:
        """Record who has the report and who was refused; the error to raise, naming what to fix."""
        delivered = sorted({*record.get("delivered_to", []), *exc.delivered})
        record["delivered_to"] = delivered
        if exc.receipt.get("remote_id"):
            record["remote_id"] = exc.receipt["remote_id"]
        self._failed(name, record, f"{type(exc).__name__}: {exc}"[:500], history,
                     delivered_to=delivered, refused=exc.refused)
        return RecipientsRefused(
            f"{self.customer} {self.week_of} {name}: {exc}. Fix the address in the customer's registry entry "
            f"(cto.email, account_owner.email) or the mailbox; the retry sends only to the refused recipients"
            + (f", not to {', '.join(delivered)}, who have it" if delivered else ""),
            delivered=delivered, refused=exc.refused, receipt=exc.receipt)

    def _sent(self, name: str, record: dict, receipt: dict, history: list) -> dict:
        record = dict(record)
        record.update(state="sent", sent_at=_now(), remote_id=receipt.get("remote_id") or record.get("remote_id"),
                      receipt=receipt)
        delivered = sorted({*record.get("delivered_to", []), *receipt.get("delivered_to", [])})
        if delivered:
            record["delivered_to"] = delivered
        record.pop("error", None)
        record.pop("refused", None)
        record["history"] = history + [{"state": "sent", "sent_at": record["sent_at"],
                                        "remote_id": record["remote_id"], "pdf_sha256": record["pdf_sha256"]}]
        self._write(name, record)
        return record
