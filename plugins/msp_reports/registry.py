"""The customer registry: who gets a report, from which systems, to which channels.

Read at run time by a task (never at DAG parse time), validated with pydantic. Any error names
the file, the customer code and the field, e.g.
``include/customers.yaml: customer 'ACME': sources.uptime.ref.service_tag is missing``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationError, field_validator, model_validator

from msp_reports.delivery.archive import relative_folder
from msp_reports.exceptions import RegistryError
from msp_reports.identity import identity_key, ref_identity
from msp_reports.snapshot import ASSET_CLASSES, DOMAINS, Domain
from msp_reports.sources import SYSTEMS
from msp_reports.sources.backup_rules import MAX_RECOVERY_DAYS

CODE_RE = re.compile(r"[A-Z0-9][A-Z0-9_-]{1,31}")  # used with fullmatch: "$" would let "ACME\n" through
TIME_OF_DAY_RE = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
MAX_APPROVAL_CUTOFF = dt.timedelta(days=6)
MIN_APPROVAL_CUTOFF = dt.timedelta(minutes=1)

#: a percentage target or drop, in (0, 100]
Percent = Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)]
#: a number of hours, finite and above zero (at most a year)
Hours = Annotated[float, Field(gt=0, le=24 * 366, allow_inf_nan=False)]
#: a week-over-week growth that raises a flag, in items
Growth = Annotated[int, Field(ge=1)]


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
    sla_drop_points: Percent = 3.0
    backup_stale_hours: Hours = 48.0
    backlog_growth: Growth = 3  # backlog up by at least this many tickets week over week
    sla_breach_growth: Growth = 3  # SLA breaches up by at least this many week over week
    default_slo_pct: Percent = 99.9


def _number_in(text: str, low: float, high: float) -> bool:
    """``text`` reads as a finite number in ``(low, high]``."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return False
    return math.isfinite(value) and low < value <= high


def _tuning_problem(key: str, value: str) -> str | None:
    """What is wrong with a ``ref`` value that tunes how a source's data is judged, if anything."""
    if key == "rpo_hours" and not _number_in(value, 0, 24 * 366):
        return "must be a number of hours above 0 (e.g. 24)"
    if (key == "slo_pct" or key.startswith("slo_pct.")) and not _number_in(value, 0, 100):
        return "must be a percentage above 0 and at most 100 (e.g. 99.9)"
    if key == "rto_hours" or key.startswith("rto_hours."):
        return _rto_problem(key, value)
    if key == "recovery_days" and not (value.strip().isdigit() and 1 <= int(value) <= MAX_RECOVERY_DAYS):
        return f"must be a whole number of days from 1 to {MAX_RECOVERY_DAYS} (e.g. 30)"
    return None


def _rto_problem(key: str, value: str) -> str | None:
    """``rto_hours`` (every asset), ``rto_hours.<class>`` or ``rto_hours.asset.<asset name>``."""
    target = key.removeprefix("rto_hours").removeprefix(".")
    if target and target not in ASSET_CLASSES and not (target.startswith("asset.") and target[6:].strip()):
        return (f"{target!r} is not an asset class ({', '.join(ASSET_CLASSES)}); write rto_hours.<class> "
                "or rto_hours.asset.<asset name>")
    if not _number_in(value, 0, 24 * 366):
        return "must be a recovery time objective in hours above 0 (e.g. 8)"
    return None


# Each channel says how it is delivered (``via``) and the connection that carries it; see README
# "Delivery channels". The conn_id default follows ``via``.
_DEFAULT_CONN = {"smtp": "smtp_default", "gmail_api": "gmail_default", "graph": "msgraph_default",
                 "sharepoint": "msgraph_default", "drive": "google_drive_default"}


class EmailDelivery(_Strict):
    via: Literal["smtp", "gmail_api", "graph"] = "smtp"
    conn_id: str = ""
    sender: EmailStr | None = None  # the mailbox that sends (Gmail API, Graph); default msp.from_email

    @model_validator(mode="after")
    def _conn(self) -> EmailDelivery:
        if not self.conn_id:
            object.__setattr__(self, "conn_id", _DEFAULT_CONN[self.via])
        return self


class TeamsDelivery(_Strict):
    via: Literal["workflow", "graph"] = "workflow"
    conn_id: str = ""  # workflow: the channel's webhook connection; graph: the Graph connection
    team_id: str | None = None  # graph: the team and channel ids
    channel_id: str | None = None
    weekly_tab: bool = True  # graph: keep a "Weekly report" tab pointing at this week's archived PDF

    @model_validator(mode="after")
    def _target(self) -> TeamsDelivery:
        if self.via == "workflow" and not self.conn_id:
            raise ValueError("conn_id is missing (the channel's Workflows webhook connection)")
        if self.via == "graph":
            for name in ("team_id", "channel_id"):
                if not getattr(self, name):
                    raise ValueError(f"{name} is missing (via: graph)")
            if not self.conn_id:
                object.__setattr__(self, "conn_id", _DEFAULT_CONN["graph"])
        return self

    @property
    def target(self) -> tuple[str, str]:
        """What identifies the customer's channel, for the one-customer-per-channel check."""
        if self.via == "graph":
            return "delivery.teams.channel_id", f"{self.team_id}/{self.channel_id}"
        return "delivery.teams.conn_id", self.conn_id


class ArchiveDelivery(_Strict):
    via: Literal["local", "sharepoint", "drive"] = "local"
    folder: str  # local and SharePoint: the folder path; Drive: a label for the folder
    conn_id: str = ""
    drive_id: str | None = None  # SharePoint: the document library's drive id; Drive: the shared drive
    folder_id: str | None = None  # Drive: the customer's folder id

    @field_validator("folder")
    @classmethod
    def _relative(cls, value: str) -> str:
        # one spelling per folder ("./Acme/Reports/" is "Acme/Reports"), so the one-customer-per-folder
        # check compares like with like; normalised before it is checked, the rule the archive writes by
        return relative_folder(value)

    @property
    def space(self) -> str:
        """Where ``folder`` lives: the local archive root, one SharePoint library, or a Drive folder id."""
        return {"local": "local", "sharepoint": f"sharepoint:{self.drive_id}"}.get(self.via, f"drive:{self.folder_id}")

    @model_validator(mode="after")
    def _target(self) -> ArchiveDelivery:
        if self.via == "sharepoint" and not self.drive_id:
            raise ValueError("drive_id is missing (via: sharepoint, the document library)")
        if self.via == "drive" and not self.folder_id:
            raise ValueError("folder_id is missing (via: drive, the customer's folder)")
        if self.via != "local" and not self.conn_id:
            object.__setattr__(self, "conn_id", _DEFAULT_CONN[self.via])
        return self


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
        if not CODE_RE.fullmatch(value):
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
                    try:
                        ref_identity(src.system, name, src.ref[name])
                    except ValueError as exc:
                        raise ValueError(f"{where}.ref.{name}: {exc}") from None
                for key, value in src.ref.items():
                    if problem := _tuning_problem(key, value):
                        raise ValueError(f"{where}.ref.{key}: {problem}")
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
    internal_teams: TeamsDelivery | None = None  # the roll-up via Graph (or a webhook); default: the conn above
    deliver_not_before: str = "09:00"
    # how long after the send time a report may still be approved; then the wait ends as "expired".
    # "48h", "2d", "90m" or a number of hours; at most 6 days, so a week's run always ends before
    # the next Monday's run (one active run at a time) and before the sensor's 7-day backstop.
    approval_cutoff: dt.timedelta = dt.timedelta(hours=48)

    _tz = field_validator("timezone")(classmethod(lambda cls, v: _check_timezone(v)))

    @field_validator("deliver_not_before", mode="before")
    @classmethod
    def _time_of_day(cls, value: Any) -> str:
        """``"HH:MM"`` in the MSP's timezone; ``9:00`` unquoted is YAML's sexagesimal 540, so refused."""
        if not isinstance(value, str) or not (m := TIME_OF_DAY_RE.fullmatch(value.strip())):
            raise ValueError(f"{value!r} is not a time of day: write it as 'HH:MM' in quotes, e.g. '09:00'")
        return f"{int(m.group(1)):02d}:{m.group(2)}"

    @field_validator("approval_cutoff", mode="before")
    @classmethod
    def _cutoff(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("give a duration such as '48h' or '2d'")
        if isinstance(value, (int, float)):
            return _cutoff_of(value, "hours")
        if isinstance(value, str) and (m := re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([mhd])\s*", value)):
            return _cutoff_of(float(m.group(1)), {"m": "minutes", "h": "hours", "d": "days"}[m.group(2)])
        return value  # ISO 8601 ("PT48H", as the model dumps it) is parsed by pydantic

    @field_validator("approval_cutoff")
    @classmethod
    def _cutoff_range(cls, value: dt.timedelta) -> dt.timedelta:
        return _cutoff_of(value.total_seconds(), "seconds")


CUTOFF_RANGE = "must be between 1 minute and 6 days (e.g. '48h')"


def _cutoff_of(amount: float, unit: str) -> dt.timedelta:
    """``amount`` ``unit`` as an approval cutoff; out of range (infinite, NaN, years) is refused
    before a ``timedelta`` is built, which would raise a bare ``OverflowError``."""
    seconds = amount * {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}[unit]
    if not (math.isfinite(seconds)
            and MIN_APPROVAL_CUTOFF.total_seconds() <= seconds <= MAX_APPROVAL_CUTOFF.total_seconds()):
        raise ValueError(CUTOFF_RANGE)
    return dt.timedelta(seconds=seconds)


class Registry(_Strict):
    msp: Msp
    customers: list[Customer]

    def get(self, code: str) -> Customer:
        for customer in self.customers:
            if customer.code == code:
                return customer
        raise KeyError(code)

    def select(self, codes: Iterable[str] | None, source: str = "registry") -> list[Customer]:
        """The customers a run asked for (every customer when none), in registry order.

        :raises RegistryError: naming each code the registry (``source``) does not have.
        """
        wanted = [c.strip() for c in (codes or []) if c and c.strip()]
        if not wanted:
            return list(self.customers)
        known = [x.code for x in self.customers]
        unknown = [c for c in wanted if c not in known]
        if unknown:
            listed = ", ".join(known) if len(known) <= 30 else f"{len(known)} customers, e.g. {', '.join(known[:5])}"
            raise RegistryError(f"unknown customer code(s) in the run's customers: {', '.join(unknown)} "
                                f"(not in {source}, which has {listed}; codes are case-sensitive)")
        return [c for c in self.customers if c.code in wanted]


def _loc(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _problems(exc: ValidationError, prefix: str = "") -> list[str]:
    """``<field>: <what is wrong>`` per error; model-level checks already name their field."""
    out = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        field = _loc(err["loc"])
        out.append(f"{prefix}{msg}" if field == "(top level)" else f"{prefix}{field}: {msg}")
    return out


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
        raise RegistryError(f"{source}: " + f"\n{source}: ".join(_problems(exc, "msp."))) from None
    customers: list[Customer] = []
    problems: list[str] = []
    for index, entry in enumerate(customers_raw):
        code = entry.get("code") if isinstance(entry, dict) else None
        who = f"customer {code!r}" if code else f"customer #{index + 1}"
        try:
            customers.append(Customer.model_validate(entry))
        except ValidationError as exc:
            problems.extend(_problems(exc, f"{who}: "))
    problems.extend(_uniqueness_problems(customers, msp))
    if problems:
        raise RegistryError(f"{source}: " + f"\n{source}: ".join(problems))
    return Registry(msp=msp, customers=customers)


def _source_identities(c: Customer) -> tuple[tuple[str, str], ...]:
    """What names this customer in each source: its identifying ref fields, per system and connection.

    Two customers with the same identity would each get the other's data (one Cloudflare zone,
    one Datto company, one Defender tenant), so the registry refuses it. Values are compared as
    the sources match them (:mod:`msp_reports.identity`), so a spelling that a source would take
    for another customer's ("Acme  Manufacturing Ltd", ``GOLF`` beside ``GOLF:``) is refused here.
    Keys that only tune how the data is judged (``rpo_hours``, ``rto_hours``, ``recovery_days``,
    ``slo_pct``) are not part of it.
    """
    out = []
    for domain, refs in c.sources.items():
        for src in refs:
            fields = SYSTEMS[src.system].ref_fields
            value = ", ".join(f"{k}={ref_identity(src.system, k, src.ref[k])}" for k in sorted(fields))
            out.append((f"sources.{domain}.ref ({src.system} {', '.join(sorted(fields))})", f"{src.conn_id}: {value}"))
    return tuple(out)


INTERNAL_CHANNEL = "the MSP's internal #weekly-reports channel"


def _uniqueness_problems(customers: list[Customer], msp: Msp | None = None) -> list[str]:
    """Two customers may never share a code, a Teams channel, an archive folder or a source identity;
    no customer's channel may be the internal one (the roll-up names every customer); no customer's
    archive folder may lie inside another's."""
    problems = []
    seen: dict[tuple[str, str], str] = {}
    if msp is not None:
        internal = msp.internal_teams.target if msp.internal_teams else ("delivery.teams.conn_id",
                                                                         msp.internal_teams_conn_id)
        seen[internal] = INTERNAL_CHANNEL
    folders = {(c.delivery.archive.space, c.delivery.archive.folder.casefold()): c.code for c in customers}
    for c in customers:
        archive = c.delivery.archive
        parts = archive.folder.casefold().split("/")
        for depth in range(1, len(parts)):
            outer = folders.get((archive.space, "/".join(parts[:depth])))
            if outer is not None and outer != c.code:
                problems.append(f"customer {c.code!r}: delivery.archive.folder {archive.folder!r} lies inside "
                                f"customer {outer!r}'s archive folder")
    for c in customers:
        for what, value in (
            ("code", c.code),
            c.delivery.teams.target,
            # a folder name is refused twice whatever carries it; a Drive folder also by its id
            ("delivery.archive.folder", c.delivery.archive.folder.lower()),
            ("delivery.archive.folder_id", c.delivery.archive.folder_id or f"(none for {c.code})"),
        ) + tuple(
            # one customer's tenant or workspace must never feed another customer's report
            (f"sources.security.ref.{key}", identity_key(src.ref[key]))
            for src in c.sources["security"] for key in ("tenant_id", "workspace") if src.ref.get(key)
        ) + _source_identities(c):
            if (what, value) in seen:
                owner = seen[what, value]
                owner = owner if owner == INTERNAL_CHANNEL else f"customer {owner!r}"
                problems.append(f"customer {c.code!r}: {what} {value!r} is already used by {owner}")
            else:
                seen[what, value] = c.code
    return problems


def load_registry(path: str | Path) -> Registry:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"{path}: registry file not found") from None
    except IsADirectoryError:
        raise RegistryError(f"{path}: the registry path is a directory, not a YAML file") from None
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read the registry file ({type(exc).__name__}: {exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise RegistryError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                            "save the file as UTF-8") from None
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML: {exc}") from None
    return parse_registry(raw, str(path))
