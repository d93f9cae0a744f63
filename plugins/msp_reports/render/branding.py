"""How the MSP's reports look: colours, logos and footer from ``branding.yaml``.

Colours are validated hex, because they are written into the stylesheet; logos must be files
inside ``TEMPLATES_DIR``, because the PDF renderer reads nothing else.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

from msp_reports.escaping import clean_text
from msp_reports.exceptions import ReportError
from msp_reports.render.templates import BRANDING_FILE, TEMPLATES_DIR

_HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_LOGO_SUFFIXES = (".svg", ".png")


def _template_asset(value: str, what: str, root: Path) -> str:
    """A path relative to the templates folder that names an existing logo file inside it."""
    if not isinstance(value, str) or not value or value.startswith("/") or ":" in value or "\\" in value:
        raise ValueError(f"{what} {value!r} must be a path relative to {root}")
    path = (root / value).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise ValueError(f"{what} {value!r} is not a file inside {root}")
    if path.suffix.lower() not in _LOGO_SUFFIXES:
        raise ValueError(f"{what} {value!r} must be one of {', '.join(_LOGO_SUFFIXES)}")
    return path.relative_to(root).as_posix()


@dataclass(frozen=True)
class Branding:
    """How the MSP's reports look: name, two colours, logo, footer; optionally a customer logo.

    Colours are ``#rrggbb`` only, since they are written into the stylesheet; logo paths are
    relative to ``TEMPLATES_DIR`` and must name files inside it (the PDF renderer reads nothing
    else). Invalid values raise :class:`ValueError` naming the field.

    :param msp_name: shown next to the logo on every page.
    :param primary_colour: headings, table headers, chart values.
    :param accent_colour: chart lines and bars, rules.
    :param logo: the MSP logo, e.g. ``brand/msp-logo.svg``.
    :param footer: plain text at the foot of every page.
    :param customer_logo: the customer's logo on the first page, if any.
    :param customer_logo_dir: where :meth:`for_customer` looks for ``<CODE>.svg`` or ``<CODE>.png``.
    """

    msp_name: str
    primary_colour: str
    accent_colour: str
    logo: str
    footer: str
    customer_logo: str | None = None
    customer_logo_dir: str = "brand/customers"

    def __post_init__(self) -> None:
        root = TEMPLATES_DIR.resolve()
        for name in ("primary_colour", "accent_colour"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _HEX_COLOUR.match(value):
                raise ValueError(f"{name} {value!r} is not a colour such as '#0b3d62'")
        for name in ("msp_name", "footer"):
            if not isinstance(getattr(self, name), str) or not clean_text(getattr(self, name)):
                raise ValueError(f"{name} must be non-empty text")
        object.__setattr__(self, "logo", _template_asset(self.logo, "logo", root))
        if self.customer_logo is not None:
            object.__setattr__(self, "customer_logo", _template_asset(self.customer_logo, "customer_logo", root))

    def for_customer(self, code: str) -> Branding:
        """This branding with the customer's logo, when ``<customer_logo_dir>/<code>.svg|.png`` exists."""
        root = TEMPLATES_DIR.resolve()
        for suffix in _LOGO_SUFFIXES:
            candidate = f"{self.customer_logo_dir.rstrip('/')}/{code}{suffix}"
            path = (root / candidate).resolve()
            if re.fullmatch(r"[A-Za-z0-9_-]+", code) and path.is_relative_to(root) and path.is_file():
                return dataclasses.replace(self, customer_logo=candidate)
        return dataclasses.replace(self, customer_logo=None)

    def css(self) -> str:
        """The colours as CSS custom properties; safe to inline because both are validated hex."""
        return f":root {{ --brand-primary: {self.primary_colour}; --brand-accent: {self.accent_colour}; }}"


def load_branding(path: str | Path | None = None) -> Branding:
    """Read ``branding.yaml`` from the templates folder; errors name the file and the field."""
    import yaml

    path = Path(path) if path is not None else TEMPLATES_DIR / BRANDING_FILE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path}: branding file not found") from None
    except yaml.YAMLError as exc:
        raise ReportError(f"{path}: not valid YAML: {exc}") from None
    fields = {f.name for f in dataclasses.fields(Branding)}
    if not isinstance(raw, dict):
        raise ReportError(f"{path}: expected a mapping with {', '.join(sorted(fields))}")
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise ReportError(f"{path}: unknown field(s) {', '.join(unknown)}")
    try:
        return Branding(**raw)
    except TypeError as exc:
        raise ReportError(f"{path}: {exc}") from None
    except ValueError as exc:
        raise ReportError(f"{path}: {exc}") from None
