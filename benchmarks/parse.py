"""DAG parse: what the dag-processor pays for ``dags/`` every cycle, against one of Airflow's own
example DAGs parsed the same way.

Airflow 3's dag-processor pre-imports the ``airflow.*`` modules a file names (in the manager,
once), then parses the file in a fresh child: ``BundleDagBag`` over that one file and the
serialization of its DAGs (``airflow.dag_processing.processor._parse_file``). Each measurement
here is one fresh process doing exactly that: import the processor, pre-import the file's
``airflow.*`` modules (not timed), then time one ``_parse_file``. The customer registry is set
through the Airflow Variable ``msp_reports_registry`` (``AIRFLOW_VAR_...``) to a 12- or a
500-customer file; the DAG reads customers at run time, so it must not matter.

``python -m benchmarks.parse <file> [<file> ...]`` (child): prints nothing, writes the result.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def _parse_once(path: str) -> dict:
    import structlog

    from airflow.dag_processing import processor

    log = structlog.get_logger()
    processor._pre_import_airflow_modules(path, log)  # the manager's job, once: not timed
    request = processor.DagFileParseRequest(file=path, bundle_path=Path(path).parent, bundle_name="bench")
    started = time.perf_counter()
    result = processor._parse_file(request, log)
    seconds = time.perf_counter() - started
    if result is None or result.import_errors or not result.serialized_dags:
        raise SystemExit(f"{path}: did not parse: {result and result.import_errors}")
    return {"seconds": seconds, "dag_ids": [d.dag_id for d in result.serialized_dags]}


def main(argv: list[str]) -> None:
    from benchmarks.common import write_result

    write_result(_parse_once(argv[0]))



# ---- driver (runs in the benchmark's main process) --------------------------------------------
def example_dag_file() -> Path:
    """Airflow's own ``example_python_operator`` (standard provider): the reference file."""
    import importlib.util

    spec = importlib.util.find_spec("airflow.providers.standard.example_dags.example_python_operator")
    if spec is None or spec.origin is None:
        raise RuntimeError("airflow.providers.standard example DAGs are not installed")
    return Path(spec.origin)


def measure(workdir: Path, registries: dict[str, Path], repeats: int) -> dict:
    """Median parse seconds of ``dags/`` per registry and of the example DAG, interleaved so
    that drift on a shared machine hits every configuration alike."""
    from benchmarks.common import DAGS, airflow_env, median, run_child

    dag_file = DAGS / "weekly_executive_report.py"
    configs: dict[str, tuple[Path, dict[str, str]]] = {"example": (example_dag_file(), {})}
    for label, registry in registries.items():
        configs[label] = (dag_file, {"AIRFLOW_VAR_MSP_REPORTS_REGISTRY": str(registry)})
    home = workdir / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    samples: dict[str, list[float]] = {label: [] for label in configs}
    # one untimed round first: the bytecode cache is written, as in a deployed image
    for round_ in range(repeats + 1):
        for label, (path, extra) in configs.items():
            env = {**airflow_env(home), **extra}
            child = run_child("benchmarks.parse", [str(path)], env=env, workdir=workdir, name=f"parse-{label}")
            if round_:
                samples[label].append(child.result["seconds"])
    return {"files": {k: str(v[0]) for k, v in configs.items()},
            "median_s": {label: median(v) for label, v in samples.items()}, "samples_s": samples}


if __name__ == "__main__":
    main(sys.argv[1:])
