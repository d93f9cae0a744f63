"""The report store unavailable or full: the task fails loudly (a StoreError naming the file) and
nothing already written is lost or left half-written.

Three real failures, no mocks of the store itself:

- unavailable: the store root is under ``/proc``, where nothing can be created, even by root;
- full (kernel): the render runs in a child process whose ``RLIMIT_FSIZE`` is smaller than the
  PDF, so the kernel refuses the write part-way (``EFBIG``), as a full disk stops a write;
- full (object storage): the store is an ``ObjectStoragePath`` URL on an fsspec filesystem that
  accepts a few kilobytes and then raises ``OSError(ENOSPC)`` mid-write.
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.factories import ROOT, WEEK_OF

from msp_reports import pipeline
from msp_reports.exceptions import StoreError
from msp_reports.settings import Settings

from .conftest import demo_connections_for, pdf_text

CODE = "ACME"
ITEM = {"customer": CODE, "week_of": WEEK_OF.isoformat()}


@pytest.fixture
def rendered(sim, settings, set_connections) -> Settings:
    """ACME's week extracted, reconciled and rendered into a local store."""
    set_connections(demo_connections_for(sim))
    for domain in pipeline.DOMAINS:
        pipeline.extract(settings, ITEM, domain)
    pipeline.build_snapshot(settings, ITEM)
    pipeline.render(settings, ITEM)
    return settings


def _files(root: str) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in Path(root).rglob("*") if p.is_file()}


def _temporaries(root: str) -> list[Path]:
    return [p for p in Path(root).rglob(".*.tmp")]


def test_unavailable_store_fails_loudly(sim, set_connections, tmp_path):
    set_connections(demo_connections_for(sim))
    settings = Settings(registry_path=Settings.load().registry_path, store_root="/proc/msp-report-store",
                        archive_root=str(tmp_path / "archive"))
    with pytest.raises(StoreError, match=r"cannot write ACME/2026-11-16/sections/uptime\.zabbix\.json"):
        pipeline.extract(settings, ITEM, "uptime")
    assert not Path("/proc/msp-report-store").exists()


def test_file_size_limit_stops_render_and_keeps_the_last_report(rendered):
    """A real kernel refusal part-way through writing the PDF (RLIMIT_FSIZE), in a child process.

    The limit is set once the PDF is rendered (WeasyPrint writes its font files to a temporary
    folder first, and they are bigger than the report), just before the store writes."""
    limit = 16 * 1024  # the Markdown fits, the PDF does not
    (Path(rendered.store_root) / CODE / WEEK_OF.isoformat() / "commentary.md").write_text("A new note.")
    before = _files(rendered.store_root)
    script = textwrap.dedent(f"""
        import resource, signal
        from msp_reports import pipeline, render
        from msp_reports.settings import Settings

        real = render.render_report

        def render_then_limit(*args, **kwargs):
            out = real(*args, **kwargs)
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
            resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
            return out

        render.render_report = render_then_limit
        pipeline.render(Settings({rendered.registry_path!r}, {rendered.store_root!r}, {rendered.archive_root!r}),
                        {ITEM!r})
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "StoreError" in proc.stderr and "report.pdf" in proc.stderr, proc.stderr[-3000:]
    assert os.strerror(errno.EFBIG) in proc.stderr
    after = _files(rendered.store_root)
    changed = {name for name in before if before[name] != after.get(name)}
    assert changed <= {f"{CODE}/{WEEK_OF.isoformat()}/report.md"}, changed  # the PDF and render.json stand
    assert set(after) == set(before)  # no half-written temporary left behind
    pdf = (Path(rendered.store_root) / CODE / WEEK_OF.isoformat() / "report.pdf").read_bytes()
    assert "Acme Manufacturing Ltd" in pdf_text(pdf)


class _FullFileSystem:
    """Built lazily (fsspec is imported by the store): a local filesystem with a byte budget."""

    budget = 0

    @classmethod
    def register(cls, budget: int) -> str:
        import fsspec
        from fsspec.implementations.local import LocalFileOpener, LocalFileSystem

        cls.budget = budget

        class Opener(LocalFileOpener):
            def write(self, data):
                room = max(0, _FullFileSystem.budget)
                written = super().write(data[:room])
                _FullFileSystem.budget -= written
                if written < len(data):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.path)
                return written

        class FullFileSystem(LocalFileSystem):
            protocol = ("fullfs",)

            @classmethod
            def _strip_protocol(cls, path):
                path = str(path)
                return LocalFileSystem._strip_protocol(path.removeprefix("fullfs://"))

            def _open(self, path, mode="rb", block_size=None, **kwargs):
                if "w" in mode or "a" in mode:
                    return Opener(self._strip_protocol(path), mode, fs=self, **kwargs)
                return super()._open(path, mode, block_size=block_size, **kwargs)

        fsspec.register_implementation("fullfs", FullFileSystem, clobber=True)
        return "fullfs://"


@pytest.mark.filterwarnings("ignore:UPath 'fullfs' filesystem not explicitly implemented")
def test_full_object_store_stops_render_and_keeps_what_was_written(rendered):
    (Path(rendered.store_root) / CODE / WEEK_OF.isoformat() / "commentary.md").write_text("Another note.")
    before = _files(rendered.store_root)
    scheme = _FullFileSystem.register(budget=20 * 1024)  # the Markdown fits, the PDF runs out of room
    full = Settings(rendered.registry_path, scheme + os.path.abspath(rendered.store_root), rendered.archive_root)
    with pytest.raises(StoreError, match=r"cannot write ACME/2026-11-16/report\.pdf: \[Errno 28\]"):
        pipeline.render(full, ITEM)
    after = _files(rendered.store_root)
    changed = {name for name in before if before[name] != after.get(name)}
    assert changed <= {f"{CODE}/{WEEK_OF.isoformat()}/report.md"}, changed
    assert set(after) == set(before)  # nothing new: no half-written temporary left behind
    assert not _temporaries(rendered.store_root)
    # the store still reads as before: the last rendered report and its record agree
    store_pdf = (Path(rendered.store_root) / CODE / WEEK_OF.isoformat() / "report.pdf").read_bytes()
    assert hashlib.sha256(store_pdf).hexdigest() == pipeline.ReportStore(rendered.store_root).read_json(
        CODE, WEEK_OF, "render.json")["pdf_sha256"]


@pytest.mark.filterwarnings("ignore:UPath 'fullfs' filesystem not explicitly implemented")
def test_full_store_before_delivery_sends_nothing(rendered, sim, tmp_path, set_connections):
    """The ledger's 'attempted' receipt cannot be written: the delivery stops before sending."""
    from devtools.simulators.mailsink import MailSink

    now = pipeline.send_time(rendered, ITEM)
    pipeline.check_approval(rendered, ITEM, None, now=now)  # the sensor waits before anyone decides
    state, _, _ = pipeline.check_approval(rendered, ITEM, "approve", now=now)
    assert state == "approved"
    with MailSink(tmp_path / "outbox") as mail:
        conns = demo_connections_for(sim)
        conns["smtp_default"] = mail.connection("reports@northwind-msp.example")
        set_connections(conns)
        scheme = _FullFileSystem.register(budget=0)
        full = Settings(rendered.registry_path, scheme + os.path.abspath(rendered.store_root), rendered.archive_root)
        # the first write of a delivery (its start record, then the ledger's receipt) fails: nothing is sent
        with pytest.raises(StoreError, match=r"delivery_started\.json|ledger/email\.json"):
            pipeline.deliver(full, ITEM, "email")
        assert mail.messages() == []
        assert pipeline.ReportStore(rendered.store_root).read_json(CODE, WEEK_OF, "ledger/email.json") is None
