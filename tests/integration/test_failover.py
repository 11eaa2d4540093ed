"""End to end: agent and monitor processes, a real broker, real signals.

Every scenario ends with the independent ledger (results, re-dispatches and completions read back
from the broker): each task completed once, by its last attempt, each step committed exactly once.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from agent_failover import models as m
from agent_failover.dev.ledger import StepResult
from agent_failover.dev.reading import read_topic
from tests.integration.conftest import Scenario

pytestmark = [pytest.mark.broker, pytest.mark.slow]

AGENTS = ["agent-a", "agent-b", "agent-c"]


def assert_exactly_once(scenario: Scenario) -> None:
    report = scenario.ledger()
    assert report.problems() == []
    assert report.ok
    # Every process signs (the scenario's fleet has a key): nothing was refused for it.
    letters = read_topic(scenario.kafka, scenario.topics.dead_letter)
    refused = [m.DeadLetter.decode(r.value) for r in letters if r.value is not None]
    assert not [d for d in refused if d.reason.startswith("bad signature")], refused


def test_sigkill_mid_task_resumes_from_last_checkpoint(
    scenario_factory: Callable[..., Scenario],
) -> None:
    s = scenario_factory()
    s.cluster.start_monitor()
    procs = s.start_agents(AGENTS)
    s.wait_monitor_ready()
    s.submit(9, steps=12)
    # Kill the agent holding the most work once one of its tasks is a few steps in.
    victim = s.busy_agent(AGENTS, min_step=3)
    held = s.held_by(victim)
    procs[victim].signal(signal.SIGKILL)
    s.wait_all_completed()
    s.observer.sync()  # "one fence, no other": everything written so far must be read

    fences = s.observer.fences(victim)
    assert len(fences) == 1
    assert fences[0].reason is m.DispatchReason.HEARTBEAT_TIMEOUT
    assert not [f for f in s.observer.fences() if f.agent_id != victim]
    moved = {r.task_id: r for r in s.observer.redispatches(victim)}
    assert set(moved) == held
    for task_id, redispatch in moved.items():
        assert redispatch.attempt == 2
        assert redispatch.target_agent_id != victim
        # It resumes from the last checkpoint the dead agent reported for it. (A checkpoint
        # acknowledged just before the kill whose event was not sent yet is redone: one step.)
        written = [
            e.checkpoint.step
            for e in s.observer.events(m.EventKind.CHECKPOINTED, victim)
            if e.task_id == task_id and e.checkpoint is not None
        ]
        resumed_after = redispatch.checkpoint.step if redispatch.checkpoint else -1
        assert resumed_after == max(written, default=-1)
        first_step = min(
            r.step for r in s.observer.results() if r.task_id == task_id and r.attempt == 2
        )
        assert first_step == resumed_after + 1
    assert_exactly_once(s)


def test_sigterm_moves_tasks_without_waiting_for_the_timeout(
    scenario_factory: Callable[..., Scenario],
) -> None:
    # A heartbeat timeout far beyond the test's deadlines: only a release can move the tasks.
    s = scenario_factory(heartbeat_timeout="300", grace_period="0")
    s.cluster.start_monitor()
    procs = s.start_agents(AGENTS)
    s.wait_monitor_ready()
    s.submit(6, steps=12)
    leaver = s.busy_agent(AGENTS, min_step=2)
    held = s.held_by(leaver)
    procs[leaver].signal(signal.SIGTERM)
    s.wait_all_completed(timeout=60)

    assert procs[leaver].wait(10) == 0
    s.observer.sync()
    assert s.observer.fences() == []
    moved = {r.task_id: r for r in s.observer.redispatches(leaver)}
    assert set(moved) == held
    assert {r.reason for r in moved.values()} == {m.DispatchReason.RELEASED}
    released = {e.task_id for e in s.observer.events(m.EventKind.RELEASED, leaver)}
    assert released == held
    assert_exactly_once(s)


def test_monitor_restart_keeps_healthy_agents_and_handles_a_failure_once(
    scenario_factory: Callable[..., Scenario],
) -> None:
    s = scenario_factory()
    first = s.cluster.start_monitor("monitor-1")
    procs = s.start_agents(AGENTS)
    s.wait_monitor_ready()
    s.submit(9, steps=20)
    victim = s.busy_agent(AGENTS, min_step=1)
    first.signal(signal.SIGKILL)
    first.wait(10)
    # A real failure while no monitor runs.
    held = s.held_by(victim)
    procs[victim].signal(signal.SIGKILL)
    s.cluster.start_monitor("monitor-2")
    s.wait_all_completed(timeout=120)
    s.observer.sync()

    fences = s.observer.fences()
    assert [(f.agent_id, f.reason) for f in fences] == [
        (victim, m.DispatchReason.HEARTBEAT_TIMEOUT)
    ]
    assert {r.task_id for r in s.observer.redispatches(victim)} == held
    for healthy in set(AGENTS) - {victim}:
        assert s.observer.redispatches(healthy) == []
    assert_exactly_once(s)


def test_agent_back_from_the_dead_is_fenced(scenario_factory: Callable[..., Scenario]) -> None:
    s = scenario_factory()
    s.cluster.start_monitor()
    procs = s.start_agents(AGENTS)
    s.wait_monitor_ready()
    s.submit(6, steps=16)
    zombie = s.busy_agent(AGENTS, min_step=2)
    held = s.held_by(zombie)
    procs[zombie].signal(signal.SIGSTOP)
    s.wait(lambda: len(s.observer.fences(zombie)) == 1, 60, "the frozen agent to be fenced")
    s.wait(
        lambda: {r.task_id for r in s.observer.redispatches(zombie)} == held,
        30,
        "its tasks to be re-dispatched",
    )
    procs[zombie].signal(signal.SIGCONT)
    s.wait_all_completed()
    s.observer.sync()

    fence = s.observer.fences(zombie)[0]
    # Whatever the revived agent wrote for its old tasks is not accepted: no completion of an old
    # attempt, and every result it produced after the fence is outside the committed chain.
    old_completions = [
        e
        for e in s.observer.events(m.EventKind.COMPLETED, zombie)
        if e.epoch == fence.epoch and e.task_id in held
    ]
    assert old_completions == []
    # Nor did anything it wrote move its old tasks again: one re-dispatch each, attempt 2.
    attempts = sorted((r.task_id, r.attempt) for r in s.observer.redispatches())
    assert attempts == sorted((t, 2) for t in held)
    # Woken mid-step past its lease, it waited for a renewal, read its control partition, found
    # the fence and stopped: no step's side effect (its result) after the fence, and no handler
    # started. (Every process of the scenario runs on this machine: one wall clock.)
    after = [
        (r.task_id, r.step, round(rec.timestamp_ms / 1000 - fence.issued_at, 2))
        for rec in read_topic(s.kafka, s.results_topic)
        if rec.value is not None
        and (r := StepResult.decode(rec.value)).epoch == fence.epoch
        and r.agent_id == zombie
        and rec.timestamp_ms / 1000 > fence.issued_at
    ]
    assert after == [], "steps executed by the fenced epoch after its fence"
    late_claims = [
        e
        for e in s.observer.events(m.EventKind.CLAIMED, zombie)
        if e.epoch == fence.epoch and e.at > fence.issued_at
    ]
    assert late_claims == []
    assert_exactly_once(s)
