"""The SIGKILL campaign: kill the worker during extract, render and each delivery, run it again,
and count what the customer received.

Each iteration takes one customer's week through the pipeline's task bodies in a child process
(``python -m devtools.chaos worker``), the way an Airflow worker runs them: the steps in
order, each step's completion recorded after its function returns (Airflow's task state), so a
re-run resumes at the first step not recorded, re-running one that finished but was not yet
recorded, as Airflow does when a worker dies. The controller SIGKILLs the child at a random
moment inside a step (an extract, render, or the email, teams or archive delivery, whatever
carries it for that customer; the five kinds in turn, the step and the moment at random), then
runs a fresh child to the end.

Then it checks, against what the simulators, the SMTP sink and the archive actually hold:

- no duplicate: at most one new email, Teams post and archived file per channel;
- nothing lost: a channel whose receipt says ``sent`` has the approved PDF on the remote side;
- every store and archive file present parses (JSON loads, PDF opens); temporary files a kill
  left behind are counted apart (they are hidden and never read);
- the ledger is consistent: each receipt is ``sent`` (with the approved PDF's hash) or, for a
  channel that cannot look up an interrupted send (SMTP, a Workflows webhook), the re-run
  stopped with ``DeliveryStateUnknown``: counted as held for a person, never as a duplicate.

Every iteration writes a commentary naming it, so each renders a different PDF and the
channels' idempotency keys never collide across iterations.

``python -m devtools.chaos --iterations 200 --seed 7`` starts the simulators and an SMTP sink
itself and prints ``N runs, K kills, sends: duplicates 0, lost 0, corrupt 0`` (and the detail).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from msp_reports.delivery.ledger import CHANNELS
from msp_reports.snapshot import DOMAINS

STEPS = tuple(f"extract:{d}" for d in DOMAINS) + ("reconcile", "render", "approve") + tuple(
    f"deliver:{c}" for c in CHANNELS)
KILL_TARGETS = ("extract", "render", "deliver:email", "deliver:teams", "deliver:archive")
HELD_EXIT = 3
PROJECT_ROOT = Path(__file__).resolve().parents[1]  # devtools/ sits at the project root


# ---- the worker (child process) -----------------------------------------------------------------
def _settings(home: Path):
    from msp_reports.settings import Settings

    return Settings(registry_path=os.environ.get("MSP_CHAOS_REGISTRY") or str(PROJECT_ROOT / "include" / "customers.yaml"),
                    store_root=str(home / "store"), archive_root=str(home / "archive"))


def _step(name: str, settings, item: dict, home: Path) -> None:
    from msp_reports import pipeline

    kind, _, arg = name.partition(":")
    if kind == "extract":
        pipeline.extract(settings, item, arg)
    elif kind == "reconcile":
        pipeline.build_snapshot(settings, item)
    elif kind == "render":
        pipeline.render(settings, item)
    elif kind == "approve":  # the sensor: the Variable is a file here; poked after the send time
        variable = home / "approval-variable"
        raw = variable.read_text() if variable.exists() else json.dumps({"decision": "approve", "by": "chaos"})
        now = pipeline.send_time(settings, item) + dt.timedelta(minutes=1)
        pipeline.check_approval(settings, item, None, now=now)  # the sensor waits before anyone decides
        state, _record, new_value = pipeline.check_approval(settings, item, raw, now=now)
        if new_value is not None:
            tmp = variable.with_suffix(".tmp")
            tmp.write_text(new_value)
            tmp.replace(variable)
        if state != "approved":
            raise RuntimeError(f"approval state is {state!r}")
    elif kind == "deliver":
        pipeline.deliver(settings, item, arg)


def worker(home: Path, customer: str, week_of: str) -> int:
    """Run the steps not yet recorded as done; print each step's name as it starts."""
    from msp_reports.exceptions import DeliveryStateUnknown
    from msp_reports.store import ReportStore

    settings = _settings(home)
    item = {"customer": customer, "week_of": week_of}
    progress = home / "progress.json"
    done: dict[str, str] = json.loads(progress.read_text()) if progress.exists() else {}
    commentary = f"Chaos iteration {home.name}: this week's notes from your account engineer."
    if ReportStore(settings.store_root).read_text(customer, dt.date.fromisoformat(week_of), "commentary.md") is None:
        ReportStore(settings.store_root).write_text(customer, dt.date.fromisoformat(week_of), "commentary.md",
                                                    commentary)
    print("READY", flush=True)
    held = False
    for name in STEPS:
        if name in done:
            continue
        print(f"STEP {name}", flush=True)
        try:
            _step(name, settings, item, home)
            outcome = "ok"
        except DeliveryStateUnknown as exc:
            print(f"HELD {name} {exc}", flush=True)
            outcome, held = "held", True
        done[name] = outcome
        tmp = progress.with_suffix(".tmp")
        tmp.write_text(json.dumps(done))
        tmp.replace(progress)
    print("DONE", flush=True)
    return HELD_EXIT if held else 0


# ---- the controller -------------------------------------------------------------------------------
@dataclass
class Summary:
    runs: int = 0
    kills: int = 0
    killed_in: Counter = field(default_factory=Counter)
    sends: Counter = field(default_factory=Counter)  # channel/via -> new deliveries observed
    duplicates: int = 0
    lost: int = 0
    corrupt: int = 0
    held: int = 0
    ledger_errors: int = 0
    worker_errors: int = 0
    orphan_temp_files: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"{self.runs} runs, {self.kills} kills, sends: duplicates {self.duplicates}, lost {self.lost}, "
                f"corrupt {self.corrupt}")

    def detail(self) -> str:
        killed = ", ".join(f"{k} {v}" for k, v in sorted(self.killed_in.items()))
        sends = ", ".join(f"{k} {v}" for k, v in sorted(self.sends.items()))
        return (f"killed in: {killed}\ndelivered: {sends}\nheld for a person (DeliveryStateUnknown): {self.held}; "
                f"ledger inconsistencies: {self.ledger_errors}; worker errors: {self.worker_errors}; "
                f"orphaned temp files left by kills: {self.orphan_temp_files}")

    @property
    def clean(self) -> bool:
        return not (self.duplicates or self.lost or self.corrupt or self.ledger_errors or self.worker_errors)


class Campaign:
    """Runs iterations against running simulators and an SMTP sink.

    :param sim: a running :class:`~devtools.simulators.server.SimServer`.
    :param mail: a running :class:`~devtools.simulators.mailsink.MailSink`.
    :param env: the children's environment (Airflow connections for every source and channel).
    :param home: a folder for the iterations' stores and archives.
    """

    def __init__(self, sim, mail, env: dict[str, str], home: Path, week_of: dt.date, *, seed: int = 0,
                 customers: list[str] | None = None, log=print) -> None:
        from msp_reports.registry import load_registry

        self.sim, self.mail, self.env, self.home, self.week_of = sim, mail, env, Path(home), week_of
        self.rng = random.Random(seed)
        self.registry = load_registry(os.environ.get("MSP_CHAOS_REGISTRY") or PROJECT_ROOT / "include" / "customers.yaml")
        self.customers = [self.registry.get(c) for c in customers] if customers else list(self.registry.customers)
        self.log = log
        self.durations: dict[str, float] = {}
        self.summary = Summary()

    # -- children
    def _start(self, home: Path, code: str) -> subprocess.Popen:
        with open(home / "worker.log", "ab") as log:  # a file, not a pipe: a chatty child never blocks
            return subprocess.Popen(
                [sys.executable, "-m", "devtools.chaos", "worker", "--home", str(home), "--customer", code,
                 "--week-of", self.week_of.isoformat()],
                env=self.env, stdout=subprocess.PIPE, stderr=log)

    def _run(self, home: Path, code: str, *, kill_in: str | None = None, delay: float = 0.0,
             timeout: float = 300) -> tuple[int, str | None, dict[str, float]]:
        """Run a worker; if ``kill_in``, SIGKILL it ``delay`` s after that step starts. Returns the
        exit code, the step running when it died, and each step's duration."""
        proc = self._start(home, code)
        fd = proc.stdout.fileno()
        started: dict[str, float] = {}
        current: str | None = None
        kill_at: float | None = None
        deadline = time.monotonic() + timeout
        buffer, eof = b"", False
        while not eof:
            ready, _, _ = select.select([fd], [], [], 0.005)
            if ready:
                chunk = os.read(fd, 65536)
                eof = not chunk
                buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.startswith(b"STEP "):
                    current = line[5:].decode()
                    started[current] = time.monotonic()
                    if kill_in and kill_at is None and current.startswith(kill_in):
                        kill_at = time.monotonic() + delay
            if kill_at is not None and time.monotonic() >= kill_at and proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                proc.stdout.close()
                return -signal.SIGKILL, current, {}
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"worker for {code} did not finish in {timeout}s")
        end = time.monotonic()
        proc.wait()
        proc.stdout.close()
        if proc.returncode not in (0, HELD_EXIT):
            self.summary.worker_errors += 1
            tail = (home / "worker.log").read_text(errors="replace")[-800:]
            self.summary.problems.append(f"{home.name}: worker exited {proc.returncode}: {tail}")
        names = list(started)
        durations = {n: (started[names[i + 1]] if i + 1 < len(names) else end) - started[n]
                     for i, n in enumerate(names)}
        return proc.returncode, current, durations

    # -- what the customer holds
    def _received(self, customer) -> dict[str, list[bytes]]:
        from devtools.inbox import received

        got = received(customer, self.week_of, sim=self.sim, mail_folder=self.mail.folder,
                       archive_root=self._archive_root, sender=str(self.registry.msp.from_email))
        return {"email": [m["pdf"] for m in got.emails], "teams": [json.dumps(p["card"]).encode() for p in got.posts],
                "archive": list(got.archived)}

    def calibrate(self) -> None:
        """One clean run: how long each step takes here, so kills land inside the chosen step."""
        home = self.home / "calibration"
        home.mkdir(parents=True, exist_ok=True)
        self._archive_root = home / "archive"
        _code, _, durations = self._run(home, self.customers[0].code)
        self.durations = durations
        self.log("calibration: " + ", ".join(f"{k} {v:.2f}s" for k, v in durations.items()))

    def iteration(self, n: int) -> None:
        customer = self.customers[n % len(self.customers)]
        home = self.home / f"run-{n:04d}"
        home.mkdir(parents=True)
        self._archive_root = home / "archive"
        before = self._received(customer)
        target = KILL_TARGETS[n % len(KILL_TARGETS)]  # every five iterations kill in each kind of step
        steps = [s for s in STEPS if s.startswith(target)]
        step = self.rng.choice(steps)
        delay = self.rng.uniform(0, 0.9 * self.durations.get(step, 1.0))  # lands inside the step
        code, died_in, _ = self._run(home, customer.code, kill_in=step, delay=delay)
        self.summary.runs += 1
        if code == -signal.SIGKILL:
            self.summary.kills += 1
            self.summary.killed_in[died_in or "start-up"] += 1
            code, _, _ = self._run(home, customer.code)  # the retry
        self._check(n, home, customer, before, held=code == HELD_EXIT)

    def _check(self, n: int, home: Path, customer, before: dict[str, list[bytes]], *, held: bool) -> None:
        from msp_reports.delivery.ledger import Ledger
        from msp_reports.store import ReportStore

        s = self.summary
        bad_files, orphans = _inspect_files(home / "store", home / "archive")
        s.corrupt += len(bad_files)
        s.orphan_temp_files += orphans
        s.problems += [f"run {n}: corrupt {f}" for f in bad_files]
        store = ReportStore(str(home / "store"))
        approved = store.read_bytes(customer.code, self.week_of, "report.pdf")
        receipts = Ledger(store, customer.code, self.week_of).receipts()
        after = self._received(customer)
        via = {"email": customer.delivery.email.via, "teams": customer.delivery.teams.via,
               "archive": customer.delivery.archive.via}
        for channel in CHANNELS:
            new = len(after[channel]) - len(before[channel])
            receipt = receipts.get(channel) or {}
            state = receipt.get("state")
            if channel == "archive":
                # an archive is addressed by name: a re-delivery replaces the file (Drive updates its
                # content), so "new" is whether the approved bytes are there; two files of that name
                # (possible on Drive only) would be the duplicate
                new = int(approved in after[channel]) + max(len(after[channel]) - 1, 0)
            if new > 1:
                s.duplicates += new - 1
                s.problems.append(f"run {n} {customer.code}: {new} deliveries on {channel}/{via[channel]}")
            if state == "sent":
                s.sends[f"{channel}/{via[channel]}"] += max(new, 0)
                if receipt.get("pdf_sha256") != _sha(approved):
                    s.ledger_errors += 1
                    s.problems.append(f"run {n} {customer.code}: {channel} receipt names another PDF")
                delivered = after[channel][-1] if after[channel] else None
                if new < 1 or (channel != "teams" and delivered != approved):
                    s.lost += 1
                    s.problems.append(f"run {n} {customer.code}: {channel} says sent, the customer has "
                                      f"{new} new, approved bytes {'match' if delivered == approved else 'differ'}")
            elif state == "attempted" and held:
                s.held += 1
            else:
                s.ledger_errors += 1
                s.problems.append(f"run {n} {customer.code}: {channel} receipt state {state!r} after the re-run")

    def run(self, iterations: int, max_seconds: float | None = None) -> Summary:
        """Run ``iterations`` (fewer if ``max_seconds`` runs out first: the summary counts the runs)."""
        started = time.monotonic()
        if not self.durations:
            self.calibrate()
        for n in range(iterations):
            if max_seconds is not None and time.monotonic() - started > max_seconds:
                self.log(f"time budget of {max_seconds:.0f} s spent after {n} iterations")
                break
            self.iteration(n)
            if (n + 1) % 10 == 0:
                self.log(f"  {n + 1}/{iterations}: {self.summary.line()}")
        return self.summary


def _sha(data: bytes | None) -> str | None:
    import hashlib

    return hashlib.sha256(data).hexdigest() if data is not None else None


def _inspect_files(*roots: Path) -> tuple[list[str], int]:
    """Files that do not parse (JSON that does not load, PDF that does not open), and the hidden
    temporary files a kill left behind."""
    from pypdf import PdfReader

    bad: list[str] = []
    orphans = 0
    for root in roots:
        if not root.exists():
            continue
        for path in root.rglob("*"):
            if not path.is_file():
                continue
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                orphans += 1
                continue
            try:
                if path.suffix == ".json":
                    json.loads(path.read_bytes())
                elif path.suffix == ".pdf":
                    if len(PdfReader(io.BytesIO(path.read_bytes()), strict=True).pages) < 1:
                        raise ValueError("no pages")
            except Exception as exc:  # noqa: BLE001 - any failure to parse is what we count
                bad.append(f"{path}: {type(exc).__name__}: {exc}"[:300])
    return bad, orphans


def child_env(conns: dict[str, dict], airflow_home: Path) -> dict[str, str]:
    from devtools.simulators.server import connection_env

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update(connection_env(conns))
    env.update({
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT / "plugins"), str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
    })
    return env


def demo_conns(sim, mail, registry) -> dict[str, dict]:
    from devtools.simulators.server import demo_connections

    channels = {c.delivery.teams.conn_id: f"{c.code.lower()}-shared" for c in registry.customers}
    channels[registry.msp.internal_teams_conn_id] = "weekly-reports"
    conns = demo_connections(sim.base_url, sim.creds, channels)
    conns["smtp_default"] = mail.connection(str(registry.msp.from_email))
    return conns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SIGKILL campaign over the report pipeline")
    sub = parser.add_subparsers(dest="command")
    w = sub.add_parser("worker")
    w.add_argument("--home", type=Path, required=True)
    w.add_argument("--customer", required=True)
    w.add_argument("--week-of", required=True)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--customers", default="", help="comma-separated codes (default: all)")
    parser.add_argument("--keep", type=Path, default=None, help="folder to keep the iterations in")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop starting iterations after this")
    args = parser.parse_args(argv)
    if args.command == "worker":
        return worker(args.home, args.customer, args.week_of)

    from msp_reports.registry import load_registry
    from devtools.simulators.credentials import SimCredentials
    from devtools.simulators.mailsink import MailSink
    from devtools.simulators.server import SimServer
    from devtools.simulators.world import World, latest_complete_week

    home = args.keep or Path(tempfile.mkdtemp(prefix="msp-chaos-"))
    home.mkdir(parents=True, exist_ok=True)
    week_of = latest_complete_week(dt.datetime.now(dt.timezone.utc))
    registry = load_registry(PROJECT_ROOT / "include" / "customers.yaml")
    started = time.monotonic()
    with SimServer(World(week_of), SimCredentials.generate()) as sim, MailSink(home / "outbox") as mail:
        env = child_env(demo_conns(sim, mail, registry), home / "airflow")
        (home / "airflow").mkdir(exist_ok=True)
        campaign = Campaign(sim, mail, env, home / "runs", week_of, seed=args.seed,
                            customers=[c for c in args.customers.split(",") if c] or None)
        print(f"kill campaign: {args.iterations} iterations, seed {args.seed}, week of {week_of}, in {home}",
              flush=True)
        summary = campaign.run(args.iterations, args.max_minutes * 60 if args.max_minutes else None)
    print(summary.detail())
    for problem in summary.problems[:20]:
        print("  problem:", problem)
    print(f"({time.monotonic() - started:.0f} s)")
    print(summary.line(), flush=True)
    return 0 if summary.clean else 1


if __name__ == "__main__":
    sys.exit(main())
