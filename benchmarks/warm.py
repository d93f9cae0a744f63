"""Import what the benchmarks' children import, once, so the bytecode cache is written before
anything is timed (a deployed image ships compiled bytecode; this machine may not)."""

from __future__ import annotations

import importlib
import time

MODULES = (
    "airflow.sdk",
    "airflow.sdk.definitions.decorators",
    "airflow.dag_processing.processor",
    "airflow.dag_processing.dagbag",
    "airflow.models",
    "weasyprint",
    "pypdf",
    "msp_reports.pipeline",
    "msp_reports.render",
    "devtools.demo",
    "devtools.simulators.server",
    "devtools.simulators.mailsink",
)


def main() -> None:
    from benchmarks.common import write_result

    started = time.perf_counter()
    for name in MODULES:
        importlib.import_module(name)
    write_result({"seconds": time.perf_counter() - started, "modules": list(MODULES)})


if __name__ == "__main__":
    main()
