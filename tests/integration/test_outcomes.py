"""End to end, outcomes: a submitter waits for what the handler returned, or why it failed; the
command line does the same with ``submit --wait``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import orjson
import pytest

from agent_failover import models as m
from agent_failover.errors import TaskFailed
from agent_failover.sdk import TaskSubmitter
from tests.integration.conftest import Scenario

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def one_agent(scenario_factory: Callable[..., Scenario]) -> Scenario:
    """A monitor and one demo agent, ready."""
    s = scenario_factory()
    s.cluster.start_monitor()
    s.start_agents(["agent-a"])
    s.wait_monitor_ready()
    return s


def test_a_submitter_gets_the_handlers_return_value_or_its_error(
    scenario_factory: Callable[..., Scenario],
) -> None:
    s = one_agent(scenario_factory)
    with TaskSubmitter(s.kafka, s.topics) as submitter:
        good = submitter.submit(m.Task(task_id="good", task_type="demo", payload={"steps": 2}))
        # The demo handler reads `steps` as an integer: this one raises.
        bad = submitter.submit(m.Task(task_id="bad", task_type="demo", payload={"steps": "x"}))
        result = good.result(timeout=60)
        assert isinstance(result, dict) and result["steps"] == 2 and result["digest"]
        with pytest.raises(TaskFailed) as failed:
            bad.result(timeout=60)
    assert failed.value.task_id == "bad" and failed.value.error.startswith("ValueError")
    assert failed.value.outcome.agent_id == "agent-a"
    s.observer.sync()
    completed = [e for e in s.observer.events(m.EventKind.COMPLETED) if e.task_id == "good"]
    assert [e.result for e in completed] == [result]  # the event carried it too


def test_submit_wait_prints_each_outcome_and_fails_when_a_task_failed(
    scenario_factory: Callable[..., Scenario],
) -> None:
    s = one_agent(scenario_factory)
    tasks = "\n".join(
        orjson.dumps(t).decode()
        for t in (
            {"task_id": "c1", "task_type": "demo", "payload": {"steps": 1}},
            {"task_id": "c2", "task_type": "demo", "payload": {"steps": "x"}},
        )
    )
    argv = ["submit", "--file", "-", "--wait", "--timeout", "60"]
    done = subprocess.run(
        [sys.executable, "-m", "agent_failover.cli", *argv],
        input=tasks,
        env=s.cluster.base_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["c1", "c2", "c1", "c2"]
    _, kind, result = lines[2].split(maxsplit=2)
    assert kind == "completed" and orjson.loads(result)["steps"] == 1
    assert lines[3].startswith("c2  failed  ValueError")
