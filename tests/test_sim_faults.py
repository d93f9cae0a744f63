"""Every source system the registry uses, told to misbehave, fails cleanly or answers truly empty:
never an invented number, never an unexpected exception."""

from __future__ import annotations

import pytest
import requests

from msp_reports.exceptions import SourceError, SourceResponseError
from msp_reports.http.client import RetryPolicy
from msp_reports.registry import load_registry
from msp_reports.sources import module_for

from tests.factories import ROOT, report_week

REGISTRY = load_registry(ROOT / "include" / "customers.yaml")
# one (customer, domain, source) per system the demo uses
CASES = {}
for c in REGISTRY.customers:
    for domain, sources in c.sources.items():
        for src in sources:
            CASES.setdefault(src.system, (c.code, domain, src))


@pytest.fixture
def connections(sim, monkeypatch):
    from devtools.simulators.server import connection_env, demo_connections

    for key, value in connection_env(demo_connections(sim.base_url, sim.creds, {})).items():
        monkeypatch.setenv(key, value)


def _extract(world, code, src):
    module = module_for(src.system)
    hook = module.HOOK(src.conn_id, policy=RetryPolicy(attempts=2, base_delay=0.01, sleep=lambda s: None))
    return module.extract(hook, dict(src.ref), report_week(world, code))


def _records(data) -> int:
    return sum(len(v) for v in data.model_dump().values() if isinstance(v, list))


@pytest.mark.parametrize("system", sorted(CASES))
def test_empty_answer_is_empty_or_a_clear_error(sim, world, connections, system):
    code, domain, src = CASES[system]
    requests.post(f"{sim.base_url}/_sim/faults/{system}", json={"mode": "empty", "times": 100}, timeout=5)
    try:
        result = _extract(world, code, src)
    except SourceError as exc:
        assert system in str(exc)
        return
    assert _records(result.data) == 0
    if domain == "tickets":  # counts from an empty PSA are the PSA's own zeros
        assert (result.data.opened, result.data.closed, result.data.backlog_end) == (0, 0, 0)


@pytest.mark.parametrize("system", sorted(CASES))
def test_malformed_body_is_a_response_error(sim, world, connections, system):
    code, domain, src = CASES[system]
    requests.post(f"{sim.base_url}/_sim/faults/{system}", json={"mode": "malformed", "times": 100}, timeout=5)
    with pytest.raises(SourceResponseError):
        _extract(world, code, src)


@pytest.mark.parametrize("system", sorted(CASES))
def test_full_answer_has_records(sim, world, connections, system):
    code, domain, src = CASES[system]
    data = _extract(world, code, src).data
    if domain == "security":  # a quiet week may have no incidents; Defender still gives the posture
        assert data.secure_score_pct is not None or _records(data) > 0 or system == "sentinel"
    else:
        assert _records(data) > 0
