"""Reading a rendered report back: the PDF's text, and the text between two headings."""

from __future__ import annotations

import io
import re

from pypdf import PdfReader


def pdf_text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def flat(text: str) -> str:
    return re.sub(r"\s+", "", text)


def between(text: str, start: str, end: str) -> str:
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip() == start)
    last = next((i for i, line in enumerate(lines) if i > first and line.strip() == end), len(lines))
    return "\n".join(lines[first + 1:last])
