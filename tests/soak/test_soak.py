"""The quick soak inside the test suite: a seeded chaos run judged by its own ledger.

About a minute and a half on a quiet 2-core box: 4 agents, 2 monitor workers, one fault of each
kind (docs/reliability.md). ``make soak SEED=n`` runs the full one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_failover.broker.select import BrokerHandle
from agent_failover.dev.soak.report import render, write_json
from agent_failover.dev.soak.run import run_soak
from agent_failover.dev.soak.schedule import PROFILES, FaultKind

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.soak]

#: The seed the suite runs; any seed must pass.
QUICK_SEED = 1


@pytest.mark.timeout(600)
def test_quick_soak_finds_no_violation(broker: BrokerHandle, tmp_path: Path) -> None:
    result = run_soak(
        QUICK_SEED,
        PROFILES["quick"],
        log_dir=tmp_path,
        bootstrap_servers=broker.bootstrap_servers,
        say=print,
    )
    write_json(result, tmp_path / "result.json")
    table = render(result)
    print(table)
    verdict = result.verdict
    assert verdict.faults_skipped == [], table
    assert set(verdict.faults_injected) == set(FaultKind), table
    assert verdict.violation_lists() == {k: [] for k in verdict.violation_lists()}, table
    assert verdict.unfinished == [], table
    assert verdict.tasks_completed == verdict.tasks_submitted, table
