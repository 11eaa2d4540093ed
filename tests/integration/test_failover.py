"""End to end: agent and monitor processes, a real broker, real signals.

Every scenario ends with the independent ledger (results, re-dispatches and completions read back
from the broker): each task completed once, by its last attempt, each step committed exactly once.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from agent_failover import models as m
from tests.integration.conftest import Scenario

pytestmark = [pytest.mark.broker, pytest.mark.slow]

AGENTS = ["agent-a", "agent-b", "agent-c"]


def assert_exactly_once(scenario: Scenario) -> None:
    report = scenario.ledger()
    assert report.problems() == []
    assert report.ok


def test_sigkill_mid_task_resumes_from_last_checkpoint(
    scenario_factory: Callable[..., Scenario],
) -> None:
    s = scenario_factory()
    s.cluster.start_monitor()
    procs = s.start_agents(AGENTS)
    s.submit(9, steps=12)
    # Kill the agent holding the most work once one of its tasks is a few steps in.
    s.wait(
        lambda: any(s.checkpointed_step(t) >= 3 for a in AGENTS for t in s.held_by(a)),
        60,
        "a task to reach step 3",
    )
    victim = max(AGENTS, key=lambda a: len(s.held_by(a)))
    held = s.held_by(victim)
    procs[victim].signal(signal.SIGKILL)
    s.wait_all_completed()

    fences = s.observer.fences(victim)
    assert len(fences) == 1
    assert fences[0].reason is m.DispatchReason.HEARTBEAT_TIMEOUT
    assert not [f for f in s.observer.fences() if f.agent_id != victim]
    moved = {r.task_id: r for r in s.observer.redispatches(victim)}
    assert set(moved) == held
    for task_id, redispatch in moved.items():
        assert redispatch.attempt == 2
        assert redispatch.target_agent_id != victim
        # It resumes from the last checkpoint the dead agent wrote for it (at most one step lost:
        # a checkpoint acknowledged just before the kill may not have been seen by the monitor).
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
    s.submit(6, steps=12)
    s.wait(
        lambda: any(s.checkpointed_step(t) >= 2 for t in s.held_by("agent-b")),
        60,
        "agent-b's tasks to make progress",
    )
    held = s.held_by("agent-b")
    procs["agent-b"].signal(signal.SIGTERM)
    s.wait_all_completed(timeout=60)

    assert procs["agent-b"].wait(10) == 0
    assert s.observer.fences() == []
    moved = {r.task_id: r for r in s.observer.redispatches("agent-b")}
    assert set(moved) == held
    assert {r.reason for r in moved.values()} == {m.DispatchReason.RELEASED}
    released = {e.task_id for e in s.observer.events(m.EventKind.RELEASED, "agent-b")}
    assert released == held
    assert_exactly_once(s)


def test_monitor_restart_keeps_healthy_agents_and_handles_a_failure_once(
    scenario_factory: Callable[..., Scenario],
) -> None:
    s = scenario_factory()
    first = s.cluster.start_monitor("monitor-1")
    procs = s.start_agents(AGENTS)
    s.submit(9, steps=20)
    s.wait(
        lambda: all(any(s.checkpointed_step(t) >= 1 for t in s.held_by(a)) for a in AGENTS),
        60,
        "every agent to make progress",
    )
    first.signal(signal.SIGKILL)
    first.wait(10)
    # A real failure while no monitor runs.
    held = s.held_by("agent-c")
    procs["agent-c"].signal(signal.SIGKILL)
    s.cluster.start_monitor("monitor-2")
    s.wait_all_completed(timeout=120)

    fences = s.observer.fences()
    assert [(f.agent_id, f.reason) for f in fences] == [
        ("agent-c", m.DispatchReason.HEARTBEAT_TIMEOUT)
    ]
    assert {r.task_id for r in s.observer.redispatches("agent-c")} == held
    assert s.observer.redispatches("agent-a") == []
    assert s.observer.redispatches("agent-b") == []
    assert_exactly_once(s)


def test_agent_back_from_the_dead_is_fenced(scenario_factory: Callable[..., Scenario]) -> None:
    s = scenario_factory()
    s.cluster.start_monitor()
    procs = s.start_agents(AGENTS)
    s.submit(6, steps=16)
    s.wait(
        lambda: any(s.checkpointed_step(t) >= 2 for t in s.held_by("agent-a")),
        60,
        "agent-a's tasks to make progress",
    )
    held = s.held_by("agent-a")
    procs["agent-a"].signal(signal.SIGSTOP)
    s.wait(lambda: len(s.observer.fences("agent-a")) == 1, 60, "agent-a to be fenced")
    s.wait(
        lambda: {r.task_id for r in s.observer.redispatches("agent-a")} == held,
        30,
        "agent-a's tasks to be re-dispatched",
    )
    procs["agent-a"].signal(signal.SIGCONT)
    s.wait_all_completed()

    fence = s.observer.fences("agent-a")[0]
    # Whatever the revived agent wrote for its old tasks is not accepted: no completion of an old
    # attempt, and every result it produced after the fence is outside the committed chain.
    old_completions = [
        e
        for e in s.observer.events(m.EventKind.COMPLETED, "agent-a")
        if e.epoch == fence.epoch and e.task_id in held
    ]
    assert old_completions == []
    # Nor did anything it wrote move its old tasks again: one re-dispatch each, attempt 2.
    attempts = sorted((r.task_id, r.attempt) for r in s.observer.redispatches())
    assert attempts == sorted((t, 2) for t in held)
    assert_exactly_once(s)
