"""The customer registry: who gets a report, from which systems, to which channels.

Read at run time by a task (never at DAG parse time), validated with pydantic. Any error names
the file, the customer code and the field, e.g.
``include/customers.yaml: customer 'ACME': sources.uptime.ref.service_tag is missing``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationError, field_validator, model_validator

from msp_reports.exceptions import RegistryError
from msp_reports.snapshot import DOMAINS, Domain
from msp_reports.sources import SYSTEMS

CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{1,31}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {value!r}") from exc
    return value


class Contact(_Strict):
    name: str
    email: EmailStr


class SourceRef(_Strict):
    system: str
    conn_id: str
    ref: dict[str, str] = Field(default_factory=dict)

    @field_validator("ref", mode="before")
    @classmethod
    def _scalars_as_text(cls, value: Any) -> Any:
        """Identifiers are text, even when YAML reads ``client_id: 482918`` as a number."""
        if isinstance(value, dict):
            return {k: str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
                    for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _known_system(self) -> SourceRef:
        if self.system not in SYSTEMS:
            raise ValueError(f"system {self.system!r} is not one of {', '.join(sorted(SYSTEMS))}")
        return self


class Thresholds(_Strict):
    sla_drop_points: float = 3.0
    backup_stale_hours: float = 48.0
    backlog_growth: int = 3  # backlog up by at least this many tickets week over week
    sla_breach_growth: int = 3  # SLA breaches up by at least this many week over week
    default_slo_pct: float = 99.9


class EmailDelivery(_Strict):
    conn_id: str = "smtp_default"


class TeamsDelivery(_Strict):
    conn_id: str  # the channel's Workflows webhook lives in this connection


class ArchiveDelivery(_Strict):
    folder: str

    @field_validator("folder")
    @classmethod
    def _relative(cls, value: str) -> str:
        if value.startswith("/") or ".." in Path(value).parts or not value.strip():
            raise ValueError("must be a relative folder name without '..'")
        return value


class Delivery(_Strict):
    email: EmailDelivery = EmailDelivery()
    teams: TeamsDelivery
    archive: ArchiveDelivery


class Customer(_Strict):
    code: str
    name: str
    timezone: str
    cto: Contact
    account_owner: Contact
    account_engineer: Contact
    sources: dict[Domain, list[SourceRef]]  # one system per domain, or several (merged in the report)
    delivery: Delivery
    thresholds: Thresholds = Thresholds()

    _tz = field_validator("timezone")(classmethod(lambda cls, v: _check_timezone(v)))

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        if not CODE_RE.match(value):
            raise ValueError("must be 2-32 upper-case letters, digits, '-' or '_'")
        return value

    @field_validator("sources", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        """``uptime: {system: zabbix, ...}`` or ``uptime: [{system: zabbix, ...}, {system: librenms, ...}]``."""
        if isinstance(value, dict):
            return {k: v if isinstance(v, list) else [v] for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _sources(self) -> Customer:
        for domain in DOMAINS:
            if not self.sources.get(domain):
                raise ValueError(f"sources.{domain} is missing")
            many = len(self.sources[domain]) > 1
            seen: set[str] = set()
            for i, src in enumerate(self.sources[domain]):
                where = f"sources.{domain}[{i}]" if many else f"sources.{domain}"
                spec = SYSTEMS[src.system]
                if spec.domain != domain:
                    raise ValueError(f"{where}.system {src.system!r} serves {spec.domain}, not {domain}")
                if src.system in seen:
                    raise ValueError(f"{where}.system {src.system!r} is listed twice")
                seen.add(src.system)
                for name in spec.ref_fields:
                    if not src.ref.get(name):
                        raise ValueError(f"{where}.ref.{name} is missing")
        return self

    def source(self, domain: Domain, system: str) -> SourceRef:
        return next(s for s in self.sources[domain] if s.system == system)

    @property
    def recipients(self) -> list[str]:
        return sorted({str(self.cto.email), str(self.account_owner.email)})


class Msp(_Strict):
    name: str
    timezone: str = "Europe/London"
    from_email: EmailStr
    internal_teams_conn_id: str = "teams_weekly_reports"
    deliver_not_before: str = "09:00"

    _tz = field_validator("timezone")(classmethod(lambda cls, v: _check_timezone(v)))


class Registry(_Strict):
    msp: Msp
    customers: list[Customer]

    def get(self, code: str) -> Customer:
        for customer in self.customers:
            if customer.code == code:
                return customer
        raise KeyError(code)

    def select(self, codes: Iterable[str] | None) -> list[Customer]:
        if not codes:
            return list(self.customers)
        wanted = list(codes)
        unknown = [c for c in wanted if c not in {x.code for x in self.customers}]
        if unknown:
            raise RegistryError(f"unknown customer code(s) in dag_run conf: {', '.join(unknown)}")
        return [c for c in self.customers if c.code in wanted]


def _loc(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def parse_registry(raw: Any, source: str = "registry") -> Registry:
    """Validate a registry document; raise :class:`RegistryError` naming customer and field."""
    if not isinstance(raw, dict):
        raise RegistryError(f"{source}: expected a mapping with 'msp' and 'customers'")
    customers_raw = raw.get("customers")
    if not isinstance(customers_raw, list) or not customers_raw:
        raise RegistryError(f"{source}: 'customers' must be a non-empty list")
    try:
        msp = Msp.model_validate(raw.get("msp"))
    except ValidationError as exc:
        err = exc.errors()[0]
        raise RegistryError(f"{source}: msp.{_loc(err['loc'])}: {err['msg']}") from None
    customers: list[Customer] = []
    problems: list[str] = []
    for index, entry in enumerate(customers_raw):
        code = entry.get("code") if isinstance(entry, dict) else None
        who = f"customer {code!r}" if code else f"customer #{index + 1}"
        try:
            customers.append(Customer.model_validate(entry))
        except ValidationError as exc:
            for err in exc.errors():
                msg = err["msg"].removeprefix("Value error, ")
                field = _loc(err["loc"])
                # model-level checks already name their field in the message
                problems.append(f"{who}: {msg}" if field == "(top level)" else f"{who}: {field}: {msg}")
    problems.extend(_uniqueness_problems(customers))
    if problems:
        raise RegistryError(f"{source}: " + f"\n{source}: ".join(problems))
    return Registry(msp=msp, customers=customers)


def _uniqueness_problems(customers: list[Customer]) -> list[str]:
    """Two customers may never share a code, a Teams channel or an archive folder."""
    problems = []
    seen: dict[tuple[str, str], str] = {}
    for c in customers:
        for what, value in (
            ("code", c.code),
            ("delivery.teams.conn_id", c.delivery.teams.conn_id),
            ("delivery.archive.folder", c.delivery.archive.folder.lower()),
        ) + tuple(
            # one customer's tenant or workspace must never feed another customer's report
            (f"sources.security.ref.{key}", src.ref[key])
            for src in c.sources["security"] for key in ("tenant_id", "workspace") if src.ref.get(key)
        ):
            if (what, value) in seen:
                problems.append(f"customer {c.code!r}: {what} {value!r} is already used by customer {seen[what, value]!r}")
            else:
                seen[what, value] = c.code
    return problems


def load_registry(path: str | Path) -> Registry:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"{path}: registry file not found") from None
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML: {exc}") from None
    return parse_registry(raw, str(path))
