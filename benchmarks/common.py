"""What every benchmark shares: child processes with their peak RSS, an Airflow home in a temp
folder, synthetic customers for the scale runs, and the statistics."""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_ROOT = Path(__file__).resolve().parents[1]  # where the benchmarks package lives
# The project under measurement: this checkout, or another tree of it (MSP_BENCH_PROJECT).
PROJECT_ROOT = Path(os.environ.get("MSP_BENCH_PROJECT") or BENCH_ROOT).resolve()
PLUGINS = PROJECT_ROOT / "plugins"
DAGS = PROJECT_ROOT / "dags"
MSP_TIMEZONE = "Europe/London"
RESULT_ENV = "BENCH_RESULT"  # a child writes its JSON result to this file


# ---- statistics -------------------------------------------------------------------------------
def median(values: list[float]) -> float:
    return statistics.median(values)


def p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile: with 15 samples, the largest but none."""
    ordered = sorted(values)
    rank = max(1, -(-95 * len(ordered) // 100))
    return ordered[rank - 1]


# ---- child processes --------------------------------------------------------------------------
@dataclass(frozen=True)
class ChildResult:
    result: dict[str, Any]
    wall_s: float
    peak_rss_mb: float  # the child's (and its waited-for descendants') maximum resident set


class ChildFailed(RuntimeError):
    pass


def airflow_env(home: Path, msp_home: Path | None = None) -> dict[str, str]:
    """An Airflow home with its SQLite DB inside ``home``; the project's DAGs and plugins."""
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "MSP_REPORTS_TIMEZONE": MSP_TIMEZONE,
    }
    if msp_home is not None:
        env["MSP_REPORTS_HOME"] = str(msp_home)
    return env


def run_child(module: str, args: list[str], *, env: dict[str, str], workdir: Path, name: str,
              timeout: float = 900) -> ChildResult:
    """``python -m <module> <args>`` in a fresh process; its JSON result, wall time and peak RSS.

    Peak RSS comes from ``wait4`` on that one child (``ru_maxrss``, KiB on Linux), so parallel or
    earlier children never mix into it.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    result_file = workdir / f"{name}.json"
    log_file = workdir / f"{name}.log"
    result_file.unlink(missing_ok=True)
    full_env = {**os.environ, **env, RESULT_ENV: str(result_file)}
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(PLUGINS), str(BENCH_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    started = time.perf_counter()
    with open(log_file, "wb") as log:
        # MSP_BENCH_PROFILE=<folder>: each child runs under cProfile, its stats in <folder>/<name>.prof
        # (slower: profile to find a cause, never to quote a figure)
        profile = os.environ.get("MSP_BENCH_PROFILE")
        prof = ["-m", "cProfile", "-o", str(Path(profile) / f"{name}.prof")] if profile else []
        proc = subprocess.Popen([sys.executable, *prof, "-m", module, *args], env=full_env, cwd=PROJECT_ROOT,
                                stdout=log, stderr=subprocess.STDOUT)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise ChildFailed(f"{name}: timed out after {timeout:.0f}s; log: {log_file}")
            time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if proc.returncode != 0 or not result_file.exists():
        tail = log_file.read_text(errors="replace")[-3000:]
        raise ChildFailed(f"{name}: exit {proc.returncode}; log {log_file}:\n{tail}")
    return ChildResult(json.loads(result_file.read_text()), wall, usage.ru_maxrss / 1024)


def write_result(doc: dict[str, Any]) -> None:
    """Called in a child: hand ``doc`` back to :func:`run_child`."""
    Path(os.environ[RESULT_ENV]).write_text(json.dumps(doc, indent=2, default=str))


def self_peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- the week every benchmark reports on ------------------------------------------------------
def bench_week() -> dt.date:
    """The latest week whose report is due by now, as the demo uses: approvals deliver at once."""
    from devtools.simulators.world import latest_complete_week

    return latest_complete_week(dt.datetime.now(dt.timezone.utc), MSP_TIMEZONE)


# ---- synthetic customers ----------------------------------------------------------------------
def synthetic_profiles(n: int):
    """``n`` customers C001..Cnnn, each shaped like demo customer ``i % 12`` (sites, device
    classes, agents, web checks, ticket volume and story), so every size has the same mix."""
    from dataclasses import replace

    from devtools.simulators.world import PROFILES

    profiles = []
    for i in range(n):
        base = PROFILES[i % len(PROFILES)]
        code = f"C{i + 1:03d}"
        profiles.append(replace(base, code=code, name=f"{base.name} {code}", domain=""))
    return tuple(profiles)


SHAPES = 12  # the demo customers whose shapes the synthetic ones repeat


def sample_indices(n: int, shapes: tuple[int, ...] = tuple(range(SHAPES))) -> list[int]:
    """One customer of each of ``shapes`` (demo customer numbers), spread over the whole
    registry: customer ``s + 12 m`` has shape ``s``; with 12 customers it is customer ``s``."""
    blocks = n // SHAPES
    return [s + SHAPES * ((s * (blocks - 1)) // (SHAPES - 1)) for s in shapes]


def _identities(cw) -> dict[str, str]:
    """How the simulators know one customer: the values its registry entry may name."""
    from devtools.simulators.halopsa import halo_client_id
    from devtools.simulators.sentinel import subscription_id

    p = cw.profile
    return {"code": p.code, "name": p.name, "tenant": cw.tenant_id, "zone": cw.zone_id,
            "halo": str(halo_client_id(p.code)), "subscription": subscription_id(cw)}


def _renamed(value: Any, old: dict[str, str], new: dict[str, str]) -> Any:
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        return value
    text = str(value)
    for key in old:
        if text == old[key]:
            return new[key]
    return text.replace(old["code"], new["code"]).replace(old["code"].lower(), new["code"].lower())


def registry_document(world) -> dict[str, Any]:
    """A registry for every customer of ``world``: each synthetic customer gets the demo registry
    entry of the demo customer it is shaped like (same systems per domain, same thresholds),
    with that customer's identifiers in every system replaced by its own."""
    import copy

    import yaml

    from devtools.simulators.world import PROFILES, World

    demo = yaml.safe_load((PROJECT_ROOT / "include" / "customers.yaml").read_text(encoding="utf-8"))
    entries = {c["code"]: c for c in demo["customers"]}
    demo_world = World(world.latest_week_of)
    customers = []
    for cw in world.customers.values():
        p = cw.profile
        base = next(b for b in PROFILES if p.name.startswith(b.name + " ") or p.code == b.code)
        entry = copy.deepcopy(entries[base.code])
        old, new = _identities(demo_world.customers[base.code]), _identities(cw)
        for domain, refs in entry["sources"].items():
            for src in refs if isinstance(refs, list) else [refs]:
                src["ref"] = {k: _renamed(v, old, new) for k, v in (src.get("ref") or {}).items()}
        entry.update(code=p.code, name=p.name, timezone=p.timezone)
        entry["cto"] = {"name": f"CTO {p.code}", "email": f"cto@{p.mail_domain}"}
        entry["delivery"] = {**entry["delivery"], "teams": {"conn_id": f"teams_{p.code.lower()}"},
                             "archive": {"folder": f"{p.name}/Reports/Weekly"}}
        customers.append(entry)
    return {"msp": demo["msp"], "customers": customers}


def write_registry(world, path: Path) -> Path:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(registry_document(world), sort_keys=False, allow_unicode=True))
    return path
