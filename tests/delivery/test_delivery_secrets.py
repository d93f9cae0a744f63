"""Delivery failure paths leak no credential: a refused Graph secret, a refused Google key, a wrong
or unreachable Workflows webhook signature, a refused SMTP login. What is checked is everything a
person or a log could see afterwards: the exception, every log record at DEBUG (the clients'
own loggers included), and the ledger receipt that the roll-up reads."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

LOCAL = {"via": "local", "folder": "Acme/Reports"}
WEBHOOK = {"via": "workflow", "conn_id": "teams_acme"}


def _secrets_of(conn: dict) -> set[str]:
    found = {conn.get("password") or ""}
    extra = conn.get("extra") or {}
    extra = json.loads(extra) if isinstance(extra, str) else extra
    key = extra.get("keyfile_dict")
    if key:
        key = json.loads(key) if isinstance(key, str) else key
        found |= {key.get("private_key", ""), key.get("private_key_id", "")}
        found |= {line for line in key.get("private_key", "").splitlines() if len(line) > 40}
    return {s for s in found if len(s) >= 8}


def _leaks(texts: dict[str, str], secrets: set[str]) -> list[tuple[str, str]]:
    return [(where, s[:6] + "…") for where, text in texts.items() for s in secrets if s in text]


def _attempt(case, channel: str, caplog) -> dict[str, str]:
    with pytest.raises(Exception) as raised:
        case.deliver(channel)
    exc = raised.value
    chain = []
    while exc is not None and len(chain) < 10:
        chain.append(f"{type(exc).__name__}: {exc!r} {exc}")
        exc = exc.__cause__ or exc.__context__
    return {"exception chain": "\n".join(chain), "log": caplog.text,
            "receipt": json.dumps(case.receipt(channel))}


def test_refused_graph_secret_leaks_nothing(sim, make_case, delivery_conns, use_connection, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = f"WRONG-graph-{uuid.uuid4().hex}"
    good = delivery_conns["msgraph_default"]
    use_connection("msgraph_wrong", {**good, "password": wrong})
    case = make_case({"email": {"via": "graph", "conn_id": "msgraph_wrong"}, "teams": WEBHOOK, "archive": LOCAL})
    texts = _attempt(case, "email", caplog)
    assert case.receipt("email")["state"] == "failed"  # refused credentials: nothing was sent
    assert not _leaks(texts, _secrets_of(good) | {wrong})


def test_refused_google_key_leaks_nothing(sim, make_case, delivery_conns, use_connection, caplog):
    caplog.set_level(logging.DEBUG)
    good = delivery_conns["gmail_default"]
    extra = dict(good["extra"])
    real = json.loads(extra["keyfile_dict"]) if isinstance(extra["keyfile_dict"], str) else extra["keyfile_dict"]
    # a well-formed key the token endpoint does not know
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    forged = {**real, "private_key": other, "private_key_id": uuid.uuid4().hex}
    extra["keyfile_dict"] = json.dumps(forged)
    use_connection("gmail_wrong", {**good, "extra": extra})
    case = make_case({"email": {"via": "gmail_api", "conn_id": "gmail_wrong"}, "teams": WEBHOOK, "archive": LOCAL})
    texts = _attempt(case, "email", caplog)
    assert case.receipt("email")["state"] == "failed"
    assert not _leaks(texts, _secrets_of(good) | _secrets_of({"extra": extra}))


@pytest.mark.parametrize("how", ["wrong sig", "unreachable"])
def test_webhook_signature_never_appears_on_failure(sim, make_case, use_connection, caplog, how):
    from devtools.simulators import teams as teams_sim
    from devtools.simulators.server import free_port

    caplog.set_level(logging.DEBUG)
    [(cid, conn)] = teams_sim.demo_connections(sim.base_url, sim.creds, {"teams_secret": "acme-secret"}).items()
    secrets = {conn["password"]}
    if how == "wrong sig":
        conn = {**conn, "password": f"WRONGSIG{uuid.uuid4().hex}"}
    else:
        conn = {**conn, "host": conn["host"].replace(sim.base_url, f"http://127.0.0.1:{free_port()}")}
    secrets.add(conn["password"])
    use_connection(cid, conn)
    case = make_case({"teams": {"via": "workflow", "conn_id": cid}, "archive": LOCAL})
    texts = _attempt(case, "teams", caplog)
    assert not _leaks(texts, secrets)


def test_refused_smtp_login_leaks_nothing(make_case, use_connection, caplog, tmp_path):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    from devtools.simulators.server import free_port

    caplog.set_level(logging.DEBUG)
    wrong = f"WRONG-smtp-{uuid.uuid4().hex}"

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            return "250 OK"

    def refuse(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=False, handled=False)

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, authenticator=refuse,
                            auth_require_tls=False)
    controller.start()
    try:
        use_connection("smtp_wrong", {"conn_type": "smtp", "host": "127.0.0.1", "port": port, "login": "reports",
                                      "password": wrong, "extra": {"disable_ssl": True, "disable_tls": True}})
        case = make_case({"email": {"via": "smtp", "conn_id": "smtp_wrong"}, "teams": WEBHOOK, "archive": LOCAL})
        texts = _attempt(case, "email", caplog)
    finally:
        controller.stop()
    assert "535" in texts["receipt"] or "Authentication" in texts["receipt"]
    assert not _leaks(texts, {wrong})
