"""The production stack's files, checked without Docker: docker-compose.yaml against the Compose
specification's JSON schema and the stack's own rules, the Dockerfile against uv.lock.

tests/data/compose-spec.json is the Compose specification schema as shipped in the npm package
dclint 3.1.0 (schemas/compose.schema.json); see tests/data/README.md.
"""

from __future__ import annotations

import json
import re
import tomllib

import pytest
import yaml

from tests.factories import ROOT

COMPOSE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                    "airflow-worker", "airflow-init")
LONG_RUNNING = ("postgres", "redis", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                "airflow-triggerer", "airflow-worker")
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}; $$ is a literal $
VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
# the only defaults allowed for anything secret: documented, for a stack on one laptop
LOCAL_ONLY_DEFAULTS = {"POSTGRES_PASSWORD": "airflow", "REDIS_PASSWORD": ""}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|_KEY$|CREDENTIAL", re.I)
# names that match but hold no secret: which backend to ask (its kwargs default to empty) and file paths
NOT_A_SECRET = re.compile(r"AIRFLOW__SECRETS__BACKEND(_KWARGS)?|.*_FILE")


@pytest.fixture(scope="module")
def raw() -> str:
    return COMPOSE.read_text()


@pytest.fixture(scope="module")
def compose(raw) -> dict:
    return yaml.safe_load(raw)  # resolves the x-airflow-common anchors and << merges


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable substitution (enough of it for this file); raises on a missing required one."""
    def sub(m: re.Match) -> str:
        name, op, arg = m["name"], m["op"], m["arg"]
        present = name in env and (env[name] != "" or op in (None, "-", "?"))
        if present:
            return env[name]
        if op in (":?", "?"):
            raise KeyError(f"{name}: {arg}")
        return arg or ""
    return VARIABLE.sub(sub, value.replace("$$", "\0")).replace("\0", "$")


def test_compose_file_is_valid_against_the_compose_specification(compose):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "tests" / "data" / "compose-spec.json").read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert [f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors] == []


def test_the_official_services_are_all_there(compose):
    assert set(compose["services"]) >= {"postgres", "redis", *AIRFLOW_SERVICES}
    commands = {name: compose["services"][name].get("command") for name in AIRFLOW_SERVICES[:-1]}
    assert commands == {"airflow-apiserver": "api-server", "airflow-scheduler": "scheduler",
                        "airflow-dag-processor": "dag-processor", "airflow-triggerer": "triggerer",
                        "airflow-worker": "celery worker"}


@pytest.mark.parametrize("service", AIRFLOW_SERVICES)
def test_every_airflow_service_shares_the_celery_configuration(compose, service):
    svc = compose["services"][service]
    env = svc["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
    assert re.fullmatch(r"postgresql\+psycopg2://\$\{POSTGRES_USER:-airflow\}:\$\{POSTGRES_PASSWORD:-airflow\}"
                        r"@postgres/\$\{POSTGRES_DB:-airflow\}", env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].endswith("@postgres/${POSTGRES_DB:-airflow}")
    assert re.fullmatch(r"redis://:\$\{REDIS_PASSWORD:-\}@redis:6379/\d+", env["AIRFLOW__CELERY__BROKER_URL"])
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
        m = VARIABLE.fullmatch(env[key])
        assert m and m["name"] == key and m["op"] == ":?", f"{key} must be required from the environment"
    assert env["AIRFLOW__SECRETS__BACKEND"] == "${AIRFLOW__SECRETS__BACKEND:-}"
    assert svc["image"] == "${AIRFLOW_IMAGE_NAME:-msp-weekly-report-airflow:latest}" and svc["build"] == "."
    mounts = {target: source for source, target in (v.rsplit(":", 1) for v in svc["volumes"])}
    for folder in ("dags", "plugins", "include"):
        assert mounts[f"/opt/airflow/{folder}"] == f"${{AIRFLOW_PROJ_DIR:-.}}/{folder}"
    assert env["MSP_REPORTS_HOME"] == "/opt/airflow/var" and "/opt/airflow/var" in mounts


@pytest.mark.parametrize("service", LONG_RUNNING)
def test_long_running_services_have_health_checks(compose, service):
    check = compose["services"][service]["healthcheck"]
    test = " ".join(check["test"]) if isinstance(check["test"], list) else check["test"]
    expected = {
        "postgres": "pg_isready", "redis": "redis-cli", "airflow-apiserver": "/api/v2/version",
        "airflow-scheduler": "localhost:8974/health", "airflow-dag-processor": "--job-type DagProcessorJob",
        "airflow-triggerer": "--job-type TriggererJob", "airflow-worker": "inspect ping",
    }[service]
    assert expected in test
    assert check["interval"] and check["retries"] >= 5
    assert compose["services"][service]["restart"] == "always"


def test_start_order_follows_health(compose):
    services = compose["services"]
    for name in AIRFLOW_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["postgres"] == {"condition": "service_healthy"}
        assert deps["redis"] == {"condition": "service_healthy"}
        if name != "airflow-init":
            assert deps["airflow-init"] == {"condition": "service_completed_successfully"}
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"] == {"condition": "service_healthy"}
    assert services["airflow-worker"]["environment"]["DUMB_INIT_SETSID"] == "0"


def test_init_migrates_and_creates_the_pools_the_dag_uses(compose):
    init = compose["services"]["airflow-init"]
    script = init["command"][-1]
    assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    assert "airflow pools import /opt/airflow/include/pools.json" in script
    assert "airflow connections import" in script and "config/connections.json" in script


def test_the_dag_runs_only_in_pools_that_pools_json_creates():
    from airflow.dag_processing.dagbag import DagBag

    declared = json.loads((ROOT / "include" / "pools.json").read_text())
    assert all(spec["slots"] >= 1 and spec["description"] for spec in declared.values())
    dag = DagBag(str(ROOT / "dags")).dags["weekly_executive_report"]
    used = {t.pool for t in dag.tasks} - {"default_pool"}
    assert used == set(declared)
    by_task = {t.task_id.split(".")[-1]: t for t in dag.tasks}
    for domain in ("uptime", "tickets", "backups", "security", "sites"):
        extract = by_task[f"extract_{domain}"]
        assert extract.pool == f"msp_source_{domain}"
        assert extract.retries >= 2 and extract.retry_exponential_backoff and extract.execution_timeout
    assert by_task["render"].execution_timeout
    assert by_task["deliver_email"].retries >= 2 and by_task["deliver_email"].execution_timeout
    # The wait holds no slot: a Required Action defers (awaiting_input); the one Variable watcher
    # per run gives its slot back between looks.
    from airflow.providers.standard.operators.hitl import HITLOperator

    assert isinstance(by_task["wait_for_approval"], HITLOperator)
    assert by_task["watch_approval_variables"].mode == "reschedule"


def test_no_secret_is_written_in_the_compose_file(raw, compose):
    assert "AIRFLOW_CONN_" not in raw, "connections belong in a secrets backend or config/connections.json"

    def walk(node, path=()):
        if isinstance(node, dict):
            for k, v in node.items():
                yield from walk(v, (*path, str(k)))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from walk(v, (*path, str(i)))
        else:
            yield path, str(node)

    for path, value in walk(compose):
        key = path[-1]
        for m in VARIABLE.finditer(value):  # a default for something secret must be a documented local one
            if SECRET_NAME.search(m["name"]) and not NOT_A_SECRET.fullmatch(m["name"]) and m["op"] in ("-", ":-"):
                assert LOCAL_ONLY_DEFAULTS.get(m["name"]) == m["arg"], f"{'/'.join(path)}: default for {m['name']}"
        if SECRET_NAME.search(key) and not NOT_A_SECRET.fullmatch(key):
            assert VARIABLE.fullmatch(value), f"{'/'.join(path)} must come from the environment, not a literal"
        for userinfo in re.findall(r"://([^@/\s]*)@", VARIABLE.sub("${}", value)):  # user:password@ in a URL
            assert userinfo.partition(":")[2] in ("", "${}"), f"{'/'.join(path)}: literal password in URL"


def test_the_stack_refuses_to_start_without_its_keys_and_resolves_with_them(compose):
    env_values = compose["x-airflow-common"]["environment"]
    with pytest.raises(KeyError, match="AIRFLOW__CORE__FERNET_KEY"):
        {k: interpolate(str(v), {}) for k, v in env_values.items()}
    keys = {"AIRFLOW__CORE__FERNET_KEY": "f" * 44, "AIRFLOW__API_AUTH__JWT_SECRET": "j", "AIRFLOW__API__SECRET_KEY": "s"}
    resolved = {k: interpolate(str(v), keys) for k, v in env_values.items()}
    assert resolved["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg2://airflow:airflow@postgres/airflow"
    assert resolved["AIRFLOW__CELERY__BROKER_URL"] == "redis://:@redis:6379/0"
    assert resolved["AIRFLOW__CORE__FERNET_KEY"] == "f" * 44
    assert resolved["AIRFLOW__SECRETS__BACKEND"] == ""
    custom = interpolate(env_values["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], {**keys, "POSTGRES_PASSWORD": "s3cret"})
    assert custom == "postgresql+psycopg2://airflow:s3cret@postgres/airflow"


def _locked_version(package: str) -> str:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return next(p["version"] for p in lock["package"] if p["name"] == package)


def test_dockerfile_builds_on_the_locked_airflow_with_weasyprint_libraries_and_the_project():
    text = DOCKERFILE.read_text()
    airflow = _locked_version("apache-airflow")
    (base,) = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert base == f"apache/airflow:{airflow}-python3.11"
    assert f"apache-airflow=={airflow}\n" in (ROOT / "requirements.txt").read_text()
    for lib in ("libpango-1.0-0", "libpangoft2-1.0-0", "libharfbuzz-subset0"):
        assert re.search(rf"apt-get install[^\n]*\\\n(?:\s+\S+\s*\\\n)*\s+{re.escape(lib)}\b", text), lib
    assert re.search(r"pip install [^\n]*-r /tmp/requirements\.txt", text)
    assert re.search(r"pip install [^\n]*--no-deps --editable /opt/airflow", text)
    assert not re.search(r"^\s*(ENV|ARG)\s+\S*(PASSWORD|SECRET|FERNET|TOKEN|AIRFLOW_CONN_)", text, re.M | re.I)


def test_requirements_txt_is_the_lock_for_what_the_image_installs():
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", (ROOT / "requirements.txt").read_text(), re.M))
    for package in ("apache-airflow", "apache-airflow-providers-celery", "celery", "redis", "weasyprint",
                    "psycopg2-binary"):
        assert pins[package] == _locked_version(package), package


def test_the_locked_celery_executor_loads():
    """The scheduler and the workers load the executor named in the compose file from the locked
    dependencies (a Celery release the provider cannot import would stop both)."""
    from airflow.executors.executor_loader import ExecutorLoader
    from airflow.executors.executor_utils import ExecutorName

    cls, _ = ExecutorLoader.import_executor_cls(ExecutorName(
        "airflow.providers.celery.executors.celery_executor.CeleryExecutor", alias="CeleryExecutor"))
    assert cls.__name__ == "CeleryExecutor" and cls.__module__ == "airflow.providers.celery.executors.celery_executor"


def test_docker_build_context_leaves_out_local_and_secret_files():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", ".venv", ".git", ".airflow", "var", "tests"} <= ignored
    assert not ignored & {"requirements.txt", "pyproject.toml", "README.md", "plugins", "dags", "include"}
