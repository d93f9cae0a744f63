"""HTML → PDF with WeasyPrint, reading nothing but the templates.

WeasyPrint gets a URL fetcher that reads nothing but files inside ``TEMPLATES_DIR`` and
``data:`` URIs, and the rendered document is stripped of attachments. Fonts and logos are
files in ``TEMPLATES_DIR``, loaded through the same fetcher.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import mimetypes
import threading
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from msp_reports.exceptions import ReportError, UnsafeResourceError
from msp_reports.render.templates import TEMPLATES_DIR

# PDF/UA-1 (tagged PDF 1.7 with title, language and XMP metadata) renders cleanly on WeasyPrint 70.
PDF_VARIANT = "pdf/ua-1"


def _template_file(url: str, root: Path) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise UnsafeResourceError(f"refusing {url!r}: only files inside {root} may be loaded")
    path = Path(url2pathname(parts.path)).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise UnsafeResourceError(f"refusing {url!r}: only files inside {root} may be loaded")
    return path


@functools.cache
def _fetcher_class():
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class TemplatesOnlyFetcher(URLFetcher):
        """Serves files inside the templates folder and ``data:`` URIs; refuses everything else.

        ``fail_on_errors`` makes a refused URL stop the rendering instead of leaving a hole.
        """

        def __init__(self, root: Path) -> None:
            super().__init__(timeout=5, allowed_protocols=("file", "data"), allow_redirects=False,
                             fail_on_errors=True)
            self.root = root

        def fetch(self, url, headers=None):
            scheme = url.split(":", 1)[0].lower() if ":" in url else ""
            if scheme == "data":
                return super().fetch(url, headers)
            if scheme == "file":
                path = _template_file(url, self.root)
                mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                return URLFetcherResponse(path.as_uri(), path.read_bytes(), {"Content-Type": mime})
            raise UnsafeResourceError(f"refusing {url[:200]!r}: reports load no remote resources")

    return TemplatesOnlyFetcher


def templates_fetcher():
    """The URL fetcher every WeasyPrint object of a report must use."""
    return _fetcher_class()(TEMPLATES_DIR.resolve())


_NO_FULL_COLLECTIONS = threading.Lock()
_renders_running = 0
_saved_thresholds: tuple[int, int, int] | None = None


@contextlib.contextmanager
def _no_full_collections():
    """No full (oldest-generation) collections while the block runs; the young ones still run.

    WeasyPrint allocates millions of small objects, so full collections run during a render; in
    an Airflow process each one also walks the 0.8 million objects that Airflow, SQLAlchemy and
    FastAPI hold (0.4 s apiece here), which made a render 30 % slower in a task than in a plain
    process. The render's own short-lived cycles die in the young generations, which still run.
    The third threshold is raised for the block and put back after, so the freeze state is not
    touched: a process whose start-up heap is frozen (Airflow's executors ``gc.freeze()`` before
    they fork task processes) keeps it frozen. Process-wide; overlapping renders (the review
    page) count in and out, and the last one out restores the thresholds.
    """
    global _renders_running, _saved_thresholds
    with _NO_FULL_COLLECTIONS:
        if _renders_running == 0:
            _saved_thresholds = gc.get_threshold()
            gc.set_threshold(_saved_thresholds[0], _saved_thresholds[1], 1_000_000)
        _renders_running += 1
    try:
        yield
    finally:
        with _NO_FULL_COLLECTIONS:
            _renders_running -= 1
            if _renders_running == 0 and _saved_thresholds is not None:
                gc.set_threshold(*_saved_thresholds)


def html_to_pdf(html: str) -> bytes:
    """Render with WeasyPrint; nothing outside the templates is read, nothing is attached."""
    with _no_full_collections():
        return _weasyprint_pdf(html)


def _weasyprint_pdf(html: str) -> bytes:
    from weasyprint import HTML
    from weasyprint.urls import FatalURLFetchingError

    root = TEMPLATES_DIR.resolve()
    try:
        document = HTML(string=html, base_url=root.as_uri() + "/", url_fetcher=templates_fetcher()).render(
            pdf_variant=PDF_VARIANT)
    except FatalURLFetchingError as exc:
        cause = exc.__cause__
        if isinstance(cause, UnsafeResourceError):
            raise UnsafeResourceError(str(cause)) from None
        raise ReportError(f"report rendering failed: {exc}: {cause}") from None
    # <link rel=attachment> and <a rel=attachment> become embedded files; a report has none.
    document.metadata.attachments = []
    for page in document.pages:
        page.links = [link for link in page.links if link[0] != "attachment"]
    return document.write_pdf(pdf_variant=PDF_VARIANT, attachments=None)
