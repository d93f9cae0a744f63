"""Which customer a source's record names: one rule for the registry and for every source.

A source names the customer in free text (Datto's ``clientCompanyName``, a VSPC company name,
an UptimeRobot monitor called ``"ACME: www.acme.example"``). The registry refuses two customers
with the same identity in one source, and the source keeps the records whose name equals the
customer's; both compare with the functions below and nothing else. If the registry compared
more strictly than a source matches, two customers it accepted as different ("Acme Ltd" and
"Acme  Ltd") could each be handed the other's records.

- :func:`identity_key`: Unicode compatibility form (NFKC), case folded, each run of whitespace
  one space, none at the ends. Two texts with the same key are one identity.
- :func:`label_key` / :func:`label_of`: a customer label written before a name's first ``:``
  (``"ACME: www.acme.example"``). A name has one label or none, and the label must equal the
  customer's whole prefix: ``GOLF`` takes neither ``GOLFX: ...`` nor ``GOLF-2: ...``, and
  ``GOLF`` and ``GOLF:`` are one identity, so the registry lets only one customer have it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

LABEL_SEPARATOR = ":"


def identity_key(text: str) -> str:
    """The form in which two spellings of a customer's name or id are compared."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", str(text)).casefold())
    return " ".join(folded.split())


def label_key(prefix: str) -> str:
    """The customer label a registry prefix stands for: ``"ACME:"`` and ``"ACME"`` are ``"acme"``.

    Raises ``ValueError`` for an empty label or one with a ``:`` inside: a name's label ends at
    its first ``:``, so such a prefix could never be matched exactly.
    """
    label = identity_key(prefix)
    label = label.removesuffix(LABEL_SEPARATOR).rstrip()
    if not label or LABEL_SEPARATOR in label:
        raise ValueError(f"must be the label before the first '{LABEL_SEPARATOR}' of the monitor names, "
                         f"e.g. 'ACME:' for 'ACME: www.acme.example'")
    return label


def label_of(name: str) -> str | None:
    """The label of a name written ``<label>: <what>``, as :func:`label_key`; ``None`` without one."""
    label, separator, _ = identity_key(name).partition(LABEL_SEPARATOR)
    label = label.rstrip()
    return label if separator and label else None


def unlabelled(name: str) -> str:
    """The name without its label: ``"ACME: www.acme.example"`` is ``"www.acme.example"``."""
    label, separator, rest = name.partition(LABEL_SEPARATOR)
    return rest.strip() if separator and rest.strip() else name


#: ref fields whose value is a label rather than a whole name, by (system, field)
_RULES: dict[tuple[str, str], Callable[[str], str]] = {("uptimerobot", "monitor_prefix"): label_key}


def ref_identity(system: str, field: str, value: str) -> str:
    """The identity of a registry ``ref`` value, as that system's source matches it."""
    return _RULES.get((system, field), identity_key)(value)
