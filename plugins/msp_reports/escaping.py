"""Plain text and Markdown escaping for everything a source system or a person wrote.

Ticket and change summaries, incident titles, asset, site and check names, customer names,
error messages and the engineer's commentary are untrusted text. :func:`clean_text` makes one
line of it (controls and bidi overrides removed, whitespace collapsed, length capped);
:func:`escape_markdown` and :func:`escape_paragraphs` make it render as its literal characters
in CommonMark. :class:`Md` marks Markdown the renderer wrote itself, which passes through as
written.

A module of its own so that the roll-up and the review page can escape text without importing
the report renderer (Jinja, Markdown-it, WeasyPrint).
"""

from __future__ import annotations

import re

TEXT_LIMIT = 300  # one table cell or sentence from a source system
SUMMARY_LIMIT = 600  # one sentence of the executive summary (may quote a flag's message)
COMMENTARY_LIMIT = 6000


class Md(str):
    """Markdown the renderer wrote itself (numbers, dates): ``finalize`` passes it through."""

    __slots__ = ()


# C0/C1 controls (tab, newline and carriage return become spaces instead), bidi embeddings,
# overrides, isolates and marks, and the byte-order mark.
_INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_WHITESPACE = re.compile(r"\s+")
# Every character with inline or block meaning in CommonMark + tables, wherever it stands.
_MD_ACTIVE = re.compile(r"([\\`*_\[\]<>#|!~&=+])")
# Characters that only mean something at the start of a line: list bullets, ordered lists.
_LINE_START = re.compile(r"^(-|\d{1,9}(?=[.)]))")


def clean_text(value: object, limit: int = TEXT_LIMIT) -> str:
    """One line of plain text: controls and bidi overrides removed, whitespace collapsed, capped."""
    text = _WHITESPACE.sub(" ", _INVISIBLE.sub("", str(value))).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def escape_markdown(value: object, limit: int = TEXT_LIMIT) -> Md:
    """Make ``value`` render as its literal characters in CommonMark, on one line."""
    text = _MD_ACTIVE.sub(r"\\\1", clean_text(value, limit))
    return Md(_LINE_START.sub(lambda m: m.group(0) + "\\" if m.group(0)[0].isdigit() else "\\-", text))


def escape_paragraphs(value: object, limit: int = COMMENTARY_LIMIT) -> Md:
    """Escape free text but keep its paragraphs and line breaks (the engineer's commentary)."""
    text = _INVISIBLE.sub("", str(value).replace("\r\n", "\n").replace("\r", "\n"))
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        lines = [escape_markdown(line, limit) for line in block.split("\n") if line.strip()]
        if lines:
            paragraphs.append("\\\n".join(lines))
    return Md("\n\n".join(paragraphs))
