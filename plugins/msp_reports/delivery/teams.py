"""Teams: post an Adaptive Card to a channel through a Workflows webhook (Graph channel
messages are in :mod:`.graph`).

Office 365 connectors and incoming webhooks are retired; a Workflows ("When a Teams webhook
request is received") flow gives each channel a URL whose ``sig`` query parameter is a secret.
So the URL lives in an Airflow connection: ``host`` = the URL without ``sig``, ``password`` =
the ``sig`` value. Both forms Microsoft hands out are trigger URLs: the current Power Platform
one (``https://<env>.environment.api.powerplatform.com:443/powerautomate/automations/direct/
workflows/<id>/triggers/manual/paths/invoke?api-version=1&sp=...&sv=1.0``) and the older Logic
Apps one (``https://prod-NN.<region>.logic.azure.com:443/workflows/<id>/triggers/manual/paths/
invoke?api-version=2016-06-01&...``); the URL is used as given (its own ``api-version``), and one
that is not a trigger URL at all is refused before anything is sent. The request body is the documented message envelope with one Adaptive Card
attachment; a Workflows webhook answers 202 with no id, so the receipt records the request id.

A POST is not retried on an ambiguous failure (timeout, 5xx): the ledger decides. The hook is
an :class:`~msp_reports.http.hooks.HttpServiceHook` on the shared client (:mod:`msp_reports.http`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from msp_reports.exceptions import SourceAuthError, SourceResponseError
from msp_reports.http.client import ApiClient, RetryPolicy
from msp_reports.http.hooks import HttpServiceHook

if TYPE_CHECKING:
    from msp_reports.delivery.ledger import Channel, Ledger


#: the trigger's answer to a request whose sig it accepted but whose method it does not take
METHOD_REFUSED = "TriggerRequestMethodNotValid"
TRIGGER_PATH = re.compile(r"/workflows/[^/]+/triggers/[^/]+/paths/invoke/?$")


def check_trigger_url(url: str, conn_id: str) -> None:
    """A Workflows trigger URL of either form, with its ``api-version``; else a clear error."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not TRIGGER_PATH.search(parts.path) \
            or not dict(parse_qsl(parts.query)).get("api-version"):
        raise SourceResponseError("teams", f"connection '{conn_id}': the host is not a Workflows trigger URL "
                                           "(…/workflows/<id>/triggers/manual/paths/invoke?api-version=…): copy "
                                           "the URL of the workflow's 'When a Teams webhook request is received' "
                                           "trigger, without its sig")


class TeamsWorkflowHook(HttpServiceHook):
    """A Teams channel's Workflows webhook.

    :param conn_id: connection whose host is the webhook URL and password its ``sig``.
    """

    conn_name_attr = "conn_id"
    default_conn_name = "teams_default"
    conn_type = "teams_workflow"
    hook_name = "Microsoft Teams (Workflows webhook)"
    system = "teams"

    def build_client(self, conn, extra: dict[str, Any]) -> ApiClient:
        return ApiClient(self.system, self.base_url(conn), timeout=float(extra.get("timeout", 30)),
                         policy=RetryPolicy(attempts=1))

    def webhook_url(self) -> str:
        check_trigger_url(self.base_url(self.connection), self.conn_id)
        parts = urlsplit(self.base_url(self.connection))
        query = dict(parse_qsl(parts.query))
        if self.connection.password:
            query["sig"] = self.connection.password
        return urlunsplit(parts._replace(query=urlencode(query)))

    def probe(self) -> str:
        """A GET of the trigger URL: the trigger checks the ``sig`` first, then refuses the method
        (``TriggerRequestMethodNotValid``) before the flow starts, so nothing is posted."""
        try:
            self.client.request("GET", self.webhook_url())
        except SourceAuthError as exc:
            raise SourceAuthError(self.system, f"the Workflows webhook refused the sig of connection "
                                               f"'{self.conn_id}' (HTTP {exc.status}): copy the sig value of "
                                               "the workflow's URL into the password", status=exc.status) from None
        except SourceResponseError as exc:
            if METHOD_REFUSED not in str(exc):
                raise
        return f"the Workflows webhook of connection '{self.conn_id}' accepted its sig (nothing was posted)"

    def post_card(self, card: dict, idempotency_key: str) -> dict:
        body = {"type": "message", "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}]}
        response = self.client.request("POST", self.webhook_url(), json=body,
                                       headers={"x-ms-client-request-id": idempotency_key})
        return {"remote_id": response.headers.get("x-ms-workflow-run-id") or idempotency_key,
                "status": response.status_code, "via": "workflow"}


@dataclass
class TeamsChannel:
    conn_id: str
    card: dict
    name: str = "teams"

    def send(self, idempotency_key: str) -> dict:
        return TeamsWorkflowHook(self.conn_id).post_card(self.card, idempotency_key)

    def lookup(self, idempotency_key: str) -> dict | None:
        return None  # a Workflows webhook offers no way to list what it received


def part_name(name: str, part: int) -> str:
    """The receipt of part ``part`` of a post split over several: part 1 keeps the channel's name."""
    return name if part == 1 else f"{name}-part{part}"


def post_parts(ledger: Ledger, channels: Sequence[Channel], digest: str) -> list[dict]:
    """One message split over several posts (the roll-up), each post exactly once: its own receipt
    and idempotency key, so a retry sends only the parts that did not go. ``digest`` is the whole
    message's; a part sent with another digest (the roll-up changed) is posted again as an update."""
    receipts = []
    for part, channel in enumerate(channels, 1):
        channel.name = part_name(channel.name, part)
        previous = ledger.receipt(channel.name)
        update = previous is not None and previous["state"] == "sent" and previous["pdf_sha256"] != digest
        receipts.append(ledger.send_once(channel, digest, resend=update))
    return receipts
