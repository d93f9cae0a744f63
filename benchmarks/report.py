"""The table: one row per figure, with its reference, the ratio and the target; then details."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    figure: str
    value: str
    reference: str
    ratio: str
    target: str
    met: str  # "yes", "no", "n/a" (report only) or "error"


def secs(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 0.1 else f"{value:.3f} s" if value < 10 else f"{value:.1f} s"


def mb(value: float) -> str:
    return f"{value:.0f} MB"


def times(value: float) -> str:
    return f"{value:.2f}x"


def yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def markdown_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    return "\n".join(lines)


def main_table(rows: list[Row]) -> str:
    return markdown_table(("figure", "value", "reference", "ratio", "target", "met?"),
                          [(r.figure, r.value, r.reference, r.ratio, r.target, r.met) for r in rows])


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def machine() -> dict[str, str]:
    cpu = ""
    for line in _run(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            cpu = line.split(":", 1)[1].strip()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "uname": _run(["uname", "-a"]) or platform.platform(),
        "cpu": f"{cpu or platform.processor() or 'unknown'}, {os.cpu_count()} CPUs",
        "python": sys.version.split()[0],
        "load": load,
    }
