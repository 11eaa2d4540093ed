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
from agent_failover.models.deadletter import MAX_KEY_CHARS
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
    topic, fleet = s.topics.tasks, s.kafka.signer

    def produce(key: bytes, value: bytes, signed: bool = True) -> None:
        headers = fleet.headers(topic, key, value) if signed else None
        producer.produce(topic, value, key, partition=0, headers=headers)

    # Signed by the fleet, so refused for what they hold: a payload nested deeper than any
    # record may carry (it decodes, but could not be written in a dispatch), and a 900 KB key.
    depth = 300
    deep = b'{"task_id":"deep","task_type":"demo","schema_version":1,"payload":'
    produce(b"deep", deep + b"[" * depth + b"]" * depth + b"}")
    produce(b"k" * 900_000, b"{not json")
    # A well-formed task nobody of the fleet signed: never placed, never run.
    forged = m.Task(task_id="forged", task_type="demo", payload={"steps": 1})
    produce(b"forged", forged.encode(), signed=False)
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
    by_offset = {d.offset: d for d in letters if d.topic == s.topics.tasks}
    assert sorted(by_offset) == [0, 1, 2]
    assert f"'payload' nests deeper than {m.MAX_JSON_DEPTH} levels" in by_offset[0].reason
    huge = by_offset[1]
    assert "not JSON" in huge.reason
    assert (huge.key_size, huge.key_cut, huge.value_cut) == (900_000, True, False)
    assert huge.key is not None and len(huge.key) == MAX_KEY_CHARS
    assert by_offset[2].reason.startswith("bad signature: unsigned record")
    assert "forged" not in {r.task_id for r in s.observer.new_work()}
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
