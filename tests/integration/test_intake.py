"""End to end, new work: the monitor places every submitted task on a free agent, whatever the
agents do meanwhile (not there yet, full, stopped and replaced, killed with a dispatch in hand).

Every scenario ends with the independent ledger: each task completed once, by its last attempt,
each step committed exactly once.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest
from confluent_kafka import Producer

from agent_failover import models as m
from agent_failover.dev.reading import read_topic
from tests.integration.conftest import Scenario

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def assert_exactly_once(scenario: Scenario) -> None:
    report = scenario.ledger()
    assert report.problems() == []
    assert report.ok


def first(events: list[m.TaskEvent], kind: m.EventKind, task_id: str) -> m.TaskEvent:
    return next(e for e in events if e.kind is kind and e.task_id == task_id)


def test_work_waits_for_an_agent_then_for_a_free_slot_and_bad_records_are_set_aside(
    scenario_factory: Callable[..., Scenario],
) -> None:
    s = scenario_factory(capacity="1")
    s.cluster.start_monitor()
    s.wait_monitor_ready()
    producer = Producer({"bootstrap.servers": s.kafka.bootstrap_servers})
    producer.produce(s.topics.tasks, b"{not a task", b"bad", partition=0)
    producer.produce(s.topics.tasks, b"[]", b"k" * 500_000, partition=0)
    assert producer.flush(30) == 0
    (early,) = s.submit(1, steps=8)  # nobody runs yet
    s.start_agents(["agent-a"])
    s.wait(
        lambda: s.held_by("agent-a") == {early}, 60, "the waiting task to start on the new agent"
    )
    (late,) = s.submit(1, steps=2)  # the only slot is taken
    s.wait_all_completed()
    s.observer.sync()

    events = s.observer.events(agent_id="agent-a")
    done_early = first(events, m.EventKind.COMPLETED, early)
    (placed_late,) = [r for r in s.observer.new_work() if r.task_id == late]
    # The monitor decided where the late task goes only once the early one had finished.
    assert placed_late.dispatched_at >= done_early.at
    assert [e.task_id for e in events if e.kind is m.EventKind.CLAIMED] == [early, late]
    dead = read_topic(s.kafka, s.topics.dead_letter)
    letters = [m.DeadLetter.decode(r.value) for r in dead]
    letters = [d for d in letters if d.topic == s.topics.tasks]
    assert sorted(d.offset for d in letters) == [0, 1]
    assert_exactly_once(s)


def test_agents_stopped_and_replaced_over_and_over_leave_no_task_behind(
    scenario_factory: Callable[..., Scenario],
) -> None:
    # The churn that used to wedge the agents' consumer group on the development broker:
    # graceful stops (SIGTERM) and fresh agents, round after round, while work keeps arriving.
    s = scenario_factory(capacity="2")
    s.cluster.start_monitor()
    procs = s.start_agents(["agent-0", "agent-1"])
    s.wait_monitor_ready()
    s.submit(4, steps=6)
    rounds = 10
    for n in range(rounds):
        leaving = procs.pop(sorted(procs)[0])
        leaving.signal(signal.SIGTERM)
        procs.update(s.start_agents([f"agent-r{n}"]))
        s.submit(2, steps=6)
        assert leaving.wait(60) == 0  # stopped cleanly: its tasks were released
    s.wait_all_completed(timeout=180)
    s.observer.sync()  # read every task event to the high watermark

    assert len(s.task_steps) == 4 + 2 * rounds
    completed = [e.task_id for e in s.observer.events(m.EventKind.COMPLETED)]
    assert sorted(completed) == sorted(s.task_steps)  # each once
    assert_exactly_once(s)


def test_an_agent_killed_with_a_dispatch_in_hand_loses_nothing_and_runs_nothing_twice(
    scenario_factory: Callable[..., Scenario],
) -> None:
    # A long degraded threshold: the frozen agent still looks healthy while its dispatch is made.
    s = scenario_factory(heartbeat_timeout="10", degraded_after="8")
    s.cluster.start_monitor()
    procs = s.start_agents(["victim"])
    s.cluster.start_agent("spare", {"AGENT_FAILOVER_POOL": "standby"})
    s.wait(
        lambda: "spare" in {e.agent_id for e in s.observer.events(m.EventKind.AGENT_STARTED)},
        60,
        "the standby to start",
    )
    s.wait_monitor_ready()

    def targets() -> set[str]:
        """The agents the monitor's newest fleet summary lists as healthy targets."""
        summaries = s.observer.of(s.topics.fleet)
        return {a.agent_id for a in summaries[-1].agents} if summaries else set()

    s.wait(lambda: targets() >= {"victim", "spare"}, 60, "the monitor to see both agents")
    procs["victim"].signal(signal.SIGSTOP)  # it can no longer read what is sent to it
    (task_id,) = s.submit(1, steps=3)
    s.wait(
        lambda: [r for r in s.observer.new_work() if r.task_id == task_id],
        60,
        "the task dispatched to the frozen agent",
    )
    procs["victim"].signal(signal.SIGKILL)
    s.wait_all_completed(timeout=90)
    s.observer.sync()

    (placed,) = [r for r in s.observer.new_work() if r.task_id == task_id]
    assert placed.target_agent_id == "victim"  # the only active agent: never the standby
    (moved,) = s.observer.redispatches("victim")
    assert (moved.task_id, moved.attempt, moved.target_agent_id) == (task_id, 2, "spare")
    claims = [
        (e.agent_id, e.attempt)
        for e in s.observer.events(m.EventKind.CLAIMED)
        if e.task_id == task_id
    ]
    assert claims == [("spare", 2)]  # the dead agent never started it
    assert_exactly_once(s)
