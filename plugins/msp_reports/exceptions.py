"""Errors a user can act on. Each names what to fix."""

from __future__ import annotations


class ReportError(Exception):
    """Base class for this package's errors."""


class RegistryError(ReportError):
    """The customer registry is invalid: the message names the file, customer and field."""


class UnsafeResourceError(ReportError):
    """The HTML asked for a resource outside the report templates (remote, or another file)."""


class SourceError(ReportError):
    """A source system could not give this customer's week."""

    def __init__(self, system: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{system}: {message}")
        self.system = system
        self.status = status
        #: the class names of the network error behind a failure, if any (see msp_reports.http.client)
        self.network_errors: frozenset[str] = frozenset()


class SourceAuthError(SourceError):
    """The source rejected the credentials of the Airflow connection."""


class SourceRateLimited(SourceError):
    """The source kept answering 429 after the allowed retries."""


class SourceUnavailable(SourceError):
    """Network error, timeout or 5xx after the allowed retries."""


class SourceResponseError(SourceError):
    """The source answered, but not with what its API documents (bad body, API error)."""


class StoreError(ReportError):
    """The report store could not read or write."""


class ApprovalError(ReportError):
    """An approval is missing, malformed, or does not match what would be delivered."""


class DeliveryError(ReportError):
    """A delivery channel failed."""


class AlreadyDelivered(DeliveryError):
    """This channel already carries another version of the report; only a resend may replace it."""


class DeliveryStateUnknown(DeliveryError):
    """An earlier send was interrupted and the channel cannot say whether it arrived."""


class RecipientsRefused(DeliveryError):
    """The mail server refused some (or all) recipients; the others have the message.

    :param delivered: the addresses the server accepted, in this send.
    :param refused: each refused address with the server's reply (``550 5.1.1 ...``).
    :param receipt: the channel's receipt of what was accepted (empty when nothing was).
    """

    def __init__(self, message: str, *, delivered: list[str], refused: dict[str, str], receipt: dict) -> None:
        super().__init__(message)
        self.delivered = delivered
        self.refused = refused
        self.receipt = receipt


class ArchiveOutsideRoot(DeliveryError):
    """The archive folder resolves outside the archive root (``..``, an absolute path, a symlink)."""
