"""ConnectWise PSA (Manage) simulator: ``/connectwise/<codebase>/apis/3.0/service/tickets``.

Serves the world's tickets as the REST API does: Basic auth with ``<companyId>+<publicKey>``
and the private key, a required ``clientId`` header, camelCase records with ``_info.dateEntered``,
``conditions`` parsed by a real recursive-descent parser (``field op value``, ``and``/``or``/
``not``, parentheses, ``"strings"``, ``[dates]``, bare booleans and numbers, ``null``,
``contains``/``like``/``in``), sparse ``fields``, ``orderBy``, and ``page``/``pageSize`` paging
(default 25, maximum 1000) with a ``Link`` header carrying ``rel="next"``/``"last"``.
``GET /connectwise/login/companyinfo/<company>`` answers the codebase lookup that clients make
before anything else (no credentials, as on the real cloud; the field set is UNCONFIRMED beyond
``Codebase``).

The world is shown as of now: a ticket entered in the future does not exist yet, and one that
closes in the future is still open. The exact bodies of 400/401 errors are UNCONFIRMED in the
reference; they follow its ``{"code", "message", "errors"}`` shape and never echo credentials.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import fnmatch
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from devtools.simulators.world import CHANGE_BOARD, PRIORITIES, SERVICE_BOARD, CustomerWorld, Ticket, World
from devtools.simulators.app import cut_short

if TYPE_CHECKING:
    from devtools.simulators.app import SimState
    from devtools.simulators.credentials import SimCredentials

UTC = dt.timezone.utc
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 1000
BOARD_IDS = {SERVICE_BOARD: 1, CHANGE_BOARD: 2}
CODEBASE = "v4_6_release"  # the codebase in the demo connection's URL
STATUS_IDS = {"New": 1, "In Progress": 2, "Closed": 5}

# Fields a condition may name, and their type. ``dateEntered`` works in conditions although the
# record carries it under ``_info``.
FIELD_TYPES: dict[str, str] = {
    "id": "number", "summary": "string", "recordType": "string",
    "board/id": "number", "board/name": "string", "status/id": "number", "status/name": "string",
    "company/id": "number", "company/identifier": "string", "company/name": "string",
    "type/id": "number", "type/name": "string", "priority/id": "number", "priority/name": "string",
    "closedFlag": "boolean", "closedDate": "date", "isInSla": "boolean",
    "_info/dateEntered": "date", "_info/lastUpdated": "date", "_info/enteredBy": "string",
}
ALIASES = {"dateEntered": "_info/dateEntered", "lastUpdated": "_info/lastUpdated", "enteredBy": "_info/enteredBy"}


def _iso(when: dt.datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- conditions: tokenizer, parser, evaluator ----------------------------------------------------
class ConditionError(ValueError):
    """The ``conditions`` text does not parse, or names a field/value the API would refuse."""


_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<date>\[[^\]]*\])
  | (?P<number>-?\d+(?:\.\d+)?(?![\w/]))
  | (?P<word>[A-Za-z_][A-Za-z0-9_/]*)
""", re.VERBOSE)
KEYWORDS = {"and", "or", "not", "contains", "like", "in", "true", "false", "null"}


@dataclass(frozen=True)
class Token:
    kind: str  # op, punct, string, date, number, word, keyword, end
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ConditionError(f"unexpected character {text[pos]!r} at position {pos}")
        kind = m.lastgroup or ""
        if kind != "ws":
            word = m.group()
            if kind == "word" and word.lower() in KEYWORDS:
                kind, word = "keyword", word.lower()
            tokens.append(Token(kind, word, pos))
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


Predicate = Callable[[dict[str, Any]], bool]


def _resolve(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("/"):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _parse_date(text: str, pos: int) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text[1:-1].strip())
    except ValueError:
        raise ConditionError(f"{text} at position {pos} is not a valid date") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class ConditionParser:
    """``expr := and ('or' and)*; and := unary ('and' unary)*;
    unary := 'not' unary | '(' expr ')' | field op value``."""

    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    @classmethod
    def compile(cls, text: str) -> Predicate:
        parser = cls(text)
        predicate = parser.expr()
        if parser.peek.kind != "end":
            raise ConditionError(f"unexpected {parser.peek.text!r} at position {parser.peek.pos}")
        return predicate

    @property
    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def accept(self, kind: str, text: str | None = None) -> Token | None:
        token = self.peek
        if token.kind == kind and (text is None or token.text == text):
            return self.take()
        return None

    def expect(self, kind: str, text: str, what: str) -> Token:
        token = self.accept(kind, text)
        if token is None:
            raise ConditionError(f"expected {what} at position {self.peek.pos}, found {self.peek.text or 'end'!r}")
        return token

    def expr(self) -> Predicate:
        parts = [self.conj()]
        while self.accept("keyword", "or"):
            parts.append(self.conj())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def conj(self) -> Predicate:
        parts = [self.unary()]
        while self.accept("keyword", "and"):
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def unary(self) -> Predicate:
        if self.accept("keyword", "not"):
            inner = self.unary()
            return lambda r: not inner(r)
        if self.accept("punct", "("):
            inner = self.expr()
            self.expect("punct", ")", "')'")
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        token = self.take()
        if token.kind != "word":
            raise ConditionError(f"expected a field name at position {token.pos}, found {token.text or 'end'!r}")
        path = ALIASES.get(token.text, token.text)
        if path not in FIELD_TYPES:
            raise ConditionError(f"unknown field {token.text!r} at position {token.pos}")
        ftype = FIELD_TYPES[path]
        negate = bool(self.accept("keyword", "not"))
        op_token = self.take()
        op = op_token.text
        if op_token.kind == "op" and not negate:
            op = "!=" if op == "<>" else op
        elif op_token.kind == "keyword" and op in ("contains", "like", "in"):
            pass
        else:
            raise ConditionError(f"expected an operator after {token.text!r} at position {op_token.pos}")
        if op == "in":
            self.expect("punct", "(", "'(' after in")
            values = [self.value(ftype)]
            while self.accept("punct", ","):
                values.append(self.value(ftype))
            self.expect("punct", ")", "')'")
            test = self._in(path, values)
        else:
            test = self._compare(path, ftype, op, self.value(ftype), op_token.pos)
        return (lambda r: not test(r)) if negate else test

    def value(self, ftype: str) -> Any:
        token = self.take()
        if token.kind == "keyword" and token.text == "null":
            return None
        expected = {"string": "string", "date": "date", "number": "number", "boolean": "keyword"}[ftype]
        if token.kind != expected or (ftype == "boolean" and token.text not in ("true", "false")):
            raise ConditionError(f"expected a {ftype} value at position {token.pos}, found {token.text or 'end'!r}")
        if ftype == "string":
            return re.sub(r"\\(.)", r"\1", token.text[1:-1])
        if ftype == "date":
            return _parse_date(token.text, token.pos)
        if ftype == "number":
            return float(token.text)
        return token.text == "true"

    @staticmethod
    def _in(path: str, values: list[Any]) -> Predicate:
        folded = {_fold(v) for v in values}
        return lambda r: _fold(_typed(r, path)) in folded

    @staticmethod
    def _compare(path: str, ftype: str, op: str, value: Any, pos: int) -> Predicate:
        if value is None:
            if op not in ("=", "!="):
                raise ConditionError(f"null can only be compared with = or != (position {pos})")
            return (lambda r: _typed(r, path) is None) if op == "=" else (lambda r: _typed(r, path) is not None)
        if op in ("contains", "like") and ftype != "string":
            raise ConditionError(f"{op} needs a string field (position {pos})")
        if op in ("<", "<=", ">", ">=") and ftype == "boolean":
            raise ConditionError(f"{op} cannot compare a boolean (position {pos})")
        want = _fold(value)
        compare: Callable[[Any], bool] = {
            "=": lambda v: v == want, "!=": lambda v: v != want,
            "<": lambda v: v < want, "<=": lambda v: v <= want,
            ">": lambda v: v > want, ">=": lambda v: v >= want,
            "contains": lambda v: want in v,
            "like": lambda v: fnmatch.fnmatchcase(v, want.replace("[", "[[]")),
        }[op]

        def test(record: dict[str, Any]) -> bool:
            actual = _typed(record, path)
            return actual is not None and compare(_fold(actual))  # SQL: null compares false

        return test


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _typed(record: dict[str, Any], path: str) -> Any:
    value = _resolve(record, path)
    if value is None:
        return None
    ftype = FIELD_TYPES[path]
    if ftype == "date":
        return dt.datetime.fromisoformat(value)
    if ftype == "number":
        return float(value)
    return value


# ---- the world, as ConnectWise records ----------------------------------------------------------
def ticket_record(cw: CustomerWorld, company_id: int, t: Ticket, now: dt.datetime) -> dict[str, Any]:
    closed = t.closed if t.closed is not None and t.closed <= now else None
    status = t.status if closed is not None or t.status != "Closed" else "In Progress"
    record: dict[str, Any] = {
        "id": t.id,
        "summary": t.summary,
        "recordType": "ServiceTicket",
        "board": {"id": BOARD_IDS.get(t.board, 9), "name": t.board},
        "status": {"id": STATUS_IDS.get(status, 3), "name": status},
        "company": {"id": company_id, "identifier": cw.code, "name": cw.profile.name},
        "type": {"id": 1 if t.type == "Incident" else 2, "name": t.type},
        "priority": {"id": PRIORITIES.index(t.priority) + 1 if t.priority in PRIORITIES else 9,
                     "name": t.priority},
        "closedFlag": closed is not None,
        "isInSla": t.in_sla,
        "_info": {"dateEntered": _iso(t.entered), "enteredBy": "helpdesk",
                  "lastUpdated": _iso(closed or t.entered)},
    }
    if closed is not None:
        record["closedDate"] = _iso(closed)
    return record


def sparse(record: dict[str, Any], fields: str | None) -> dict[str, Any]:
    """The ``fields`` sparse fieldset: ``id,board/name,_info/dateEntered``."""
    if not fields:
        return record
    out: dict[str, Any] = {}
    for path in (f.strip() for f in fields.split(",") if f.strip()):
        parts = path.split("/")
        src: Any = record
        for part in parts:
            src = src.get(part) if isinstance(src, dict) else None
        if src is None:
            continue
        dst = out
        for part in parts[:-1]:
            dst = dst.setdefault(part, {})
        dst[parts[-1]] = src
    return out


def _error(status: int, code: str, message: str, errors: list[dict[str, str]] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status)


class ConnectWiseSim:
    def __init__(self, state: SimState) -> None:
        self.state = state
        self.world: World = state.world_view()
        self.company_ids = {code: 250 + n for n, code in enumerate(self.world.customers)}

    def authorize(self, request: Request) -> JSONResponse | None:
        creds = self.state.creds
        header = request.headers.get("authorization", "")
        user = password = ""
        if header[:6].lower() == "basic ":
            try:
                user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user = password = ""
        expected = f"{creds.connectwise_company}+{creds.connectwise_public_key}"
        if not (secrets.compare_digest(user, expected)
                and secrets.compare_digest(password, creds.connectwise_private_key)):
            return _error(401, "Unauthorized", "The user could not be authenticated: check the company, "
                                               "public key and private key.")
        if request.headers.get("clientId", "") != creds.connectwise_client_id:
            return _error(401, "Unauthorized", "A registered clientId header is required.")
        return None

    def records(self, now: dt.datetime) -> list[dict[str, Any]]:
        out = []
        for cw in self.world.customers.values():
            company_id = self.company_ids[cw.code]
            out += [ticket_record(cw, company_id, t, now) for t in cw.tickets if t.entered <= now]
        return out

    def query(self, request: Request) -> list[dict[str, Any]] | JSONResponse:
        params = request.query_params
        try:
            predicate = ConditionParser.compile(params["conditions"]) if params.get("conditions") else None
        except ConditionError as exc:
            return _error(400, "InvalidObject", "The conditions are invalid.",
                          [{"code": "InvalidCondition", "message": str(exc), "resource": "ticket",
                            "field": "conditions"}])
        rows = self.records(dt.datetime.now(UTC))
        if predicate is not None:
            rows = [r for r in rows if predicate(r)]
        order = (params.get("orderBy") or "id asc").split()
        key = ALIASES.get(order[0], order[0])
        if key not in FIELD_TYPES or len(order) > 2 or (len(order) == 2 and order[1].lower() not in ("asc", "desc")):
            return _error(400, "InvalidObject", f"orderBy {params.get('orderBy')!r} is invalid.")
        rows.sort(key=lambda r: (_typed(r, key) is None, _typed(r, key) or 0),
                  reverse=len(order) == 2 and order[1].lower() == "desc")
        return rows


def _link(request: Request, page: int, rel: str) -> str:
    return f'<{request.url.include_query_params(page=page)}>; rel="{rel}"'


def router(state: SimState) -> APIRouter:
    api = APIRouter()
    sim = ConnectWiseSim(state)
    prefix = "/{codebase}/apis/3.0/service/tickets"

    @api.get("/login/companyinfo/{company}")
    async def company_info(company: str) -> JSONResponse:
        if company.casefold() != state.creds.connectwise_company.casefold():
            return JSONResponse(None)
        return JSONResponse({"CompanyName": company, "Codebase": f"{CODEBASE}/", "VersionCode": "v2025.1",
                             "CompanyID": company, "IsCloud": True, "SiteUrl": "127.0.0.1"})

    @api.get(prefix + "/count")
    async def count(codebase: str, request: Request) -> JSONResponse:
        if (denied := sim.authorize(request)) is not None:
            return denied
        rows = sim.query(request)
        if isinstance(rows, JSONResponse):
            return rows
        return JSONResponse({"count": len(rows)})

    @api.get(prefix)
    async def tickets(codebase: str, request: Request) -> JSONResponse:
        if (denied := sim.authorize(request)) is not None:
            return denied
        try:
            page = int(request.query_params.get("page", 1))
            size = int(request.query_params.get("pageSize", DEFAULT_PAGE_SIZE))
        except ValueError:
            return _error(400, "InvalidObject", "page and pageSize must be integers.")
        if page < 1 or size < 1:
            return _error(400, "InvalidObject", "page and pageSize must be positive.")
        size = min(size, MAX_PAGE_SIZE)
        rows = sim.query(request)
        if isinstance(rows, JSONResponse):
            return rows
        last = max(1, -(-len(rows) // size))
        chunk = cut_short(rows[(page - 1) * size: page * size], page > 1)
        links = []
        if page > 1:
            links += [_link(request, 1, "first"), _link(request, page - 1, "prev")]
        if page < last:
            links += [_link(request, page + 1, "next"), _link(request, last, "last")]
        fields = request.query_params.get("fields")
        headers = {"Link": ", ".join(links)} if links else {}
        return JSONResponse([sparse(r, fields) for r in chunk], headers=headers)

    @api.get(prefix + "/{ticket_id}")
    async def ticket(codebase: str, ticket_id: int, request: Request) -> JSONResponse:
        if (denied := sim.authorize(request)) is not None:
            return denied
        row = next((r for r in sim.records(dt.datetime.now(UTC)) if r["id"] == ticket_id), None)
        if row is None:
            return _error(404, "NotFound", f"Ticket ID {ticket_id} not found")
        return JSONResponse(sparse(row, request.query_params.get("fields")))

    return api


def demo_connections(base_url: str, creds: SimCredentials, teams_channels: dict) -> dict[str, dict]:
    return {
        "connectwise_default": {
            "conn_type": "connectwise",
            "host": f"{base_url}/connectwise/{CODEBASE}/apis/3.0",
            "login": f"{creds.connectwise_company}+{creds.connectwise_public_key}",
            "password": creds.connectwise_private_key,
            "extra": {"client_id": creds.connectwise_client_id},
        }
    }
