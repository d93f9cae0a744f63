"""Microsoft's own clients pointed at the simulators: msgraph-sdk (Kiota) for Graph and Defender,
azure-mgmt-securityinsight (azure-core) for Sentinel's ARM API.

Both SDKs refuse to send a bearer token over plain HTTP, so they talk to the simulators' TLS
listener with its CA bundle. Tokens come from the simulators' own Azure AD endpoints by the
client-credentials grant, as a real app gets them; the SDKs are then given the token as is.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

T = TypeVar("T")
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
ARM_SCOPE = "https://management.azure.com/.default"


def tls(sim: Any) -> Any:
    """The TLS endpoint (``base_url``, ``ca_bundle``) of the session's simulator server."""
    from devtools.simulators.tls import endpoint_for

    endpoint = endpoint_for(sim.base_url)
    assert endpoint is not None, "the simulator server has no TLS listener"
    return endpoint


def ssl_context(sim: Any) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=tls(sim).ca_bundle)


def app_token(sim: Any, system: str, tenant_id: str, client_id: str, secret: str, scope: str) -> str:
    """A client-credentials token from ``/<system>/login/<tenant>/oauth2/v2.0/token``."""
    reply = httpx.post(f"{tls(sim).base_url}/{system}/login/{tenant_id}/oauth2/v2.0/token", verify=ssl_context(sim),
                       data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
                             "scope": scope})
    reply.raise_for_status()
    return reply.json()["access_token"]


def graph_token(sim: Any, system: str = "graph", tenant_id: str | None = None) -> str:
    from devtools.simulators.graph import MSP_TENANT_ID

    return app_token(sim, system, tenant_id or MSP_TENANT_ID, sim.creds.graph_client_id,
                     sim.creds.graph_client_secret, GRAPH_SCOPE)


def run_graph(sim: Any, work: Callable[[Any], Awaitable[T]], *, base: str = "graph/v1.0",
              token: str | None = None) -> T:
    """Run ``work(client)`` with a ``GraphServiceClient`` whose base URL is the simulator's
    ``base`` (under its TLS listener) and whose every request carries ``token``."""
    from kiota_abstractions.authentication import (
        AccessTokenProvider, AllowedHostsValidator, BaseBearerTokenAuthenticationProvider,
    )
    from msgraph import GraphRequestAdapter, GraphServiceClient
    from msgraph_core import GraphClientFactory

    bearer = token or graph_token(sim)

    class _Token(AccessTokenProvider):
        async def get_authorization_token(self, uri: str, additional_authentication_context: dict = {}) -> str:
            return bearer

        def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
            return AllowedHostsValidator(["127.0.0.1"])

    async def session() -> T:
        http = GraphClientFactory.create_with_default_middleware(client=httpx.AsyncClient(verify=ssl_context(sim)))
        adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(_Token()), client=http)
        adapter.base_url = f"{tls(sim).base_url}/{base}"
        try:
            return await work(GraphServiceClient(request_adapter=adapter))
        finally:
            await http.aclose()

    return asyncio.run(session())


def parse(model: type[T], body: bytes | str | dict) -> T:
    """``body`` parsed into the SDK's ``model`` by Kiota's JSON parse node, as the SDK parses replies."""
    from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory

    raw = json.dumps(body).encode() if isinstance(body, dict) else (body.encode() if isinstance(body, str) else body)
    return JsonParseNodeFactory().get_root_parse_node("application/json", raw).get_object_value(model)


def unknown_properties(obj: Any, path: str = "") -> list[str]:
    """Every property of ``obj`` (a parsed Kiota model, recursively) that the model does not know:
    the simulator invented it, or misspelt a real one."""
    found: list[str] = []
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            found += unknown_properties(item, f"{path}[{i}]")
        return found
    extra = getattr(obj, "additional_data", None)
    if not isinstance(extra, dict):
        return found
    found += [f"{path}.{k}" for k in extra if not k.startswith("@odata.")]
    for name, value in vars(obj).items():
        if name not in ("additional_data", "backing_store") and not name.startswith("_"):
            found += unknown_properties(value, f"{path}.{name}")
    return found


def graph_error(body: bytes | dict) -> Any:
    """A reply body as Graph's error envelope: parsed by the SDK's ``ODataError``, with a code and
    a message, and nothing of a web framework's own (``detail``)."""
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    raw = body if isinstance(body, dict) else json.loads(body)
    assert "detail" not in raw, raw
    error = parse(ODataError, raw).error
    assert error is not None and error.code and error.message, raw
    return error
