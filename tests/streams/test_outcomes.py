"""Outcomes: one per task, published when the monitor accepts the task's end, never for a
zombie's, a superseded attempt's or a copy's."""

from __future__ import annotations

from typing import Any

from agent_failover import models as m
from agent_failover.config import Topics
from agent_failover.models import EventKind, OutcomeKind, TaskOutcome
from agent_failover.partitioner import partition_for
from tests.streams.factories import control, event, redispatch
from tests.streams.harness import T0, Sent, Worker

TOPICS = Topics(prefix="x.", agent_partitions=2, task_partitions=3)
A, B = "a", "b"  # both partitions are owned: wherever they hash, both are this worker's


def worker() -> Worker:
    w = Worker({}, topics=TOPICS)
    w.monitor.ownership.set({0, 1}, T0)
    return w


def deliver(w: Worker, ev: m.TaskEvent | m.Redispatch, agent: str) -> None:
    w.deliver(
        TOPICS.task_events if isinstance(ev, m.TaskEvent) else TOPICS.priority,
        agent,
        ev.encode(),
        T0,
        w.monitor.ownership.partition_of(agent),
    )


def outcomes(w: Worker) -> list[Sent]:
    return w.outbox.take(TOPICS.outcomes)


def test_an_accepted_completion_is_the_tasks_outcome_with_its_result_in_the_tasks_partition() -> (
    None
):
    w = worker()
    deliver(w, event(EventKind.CLAIMED, agent=A, task_id="t-7"), A)
    deliver(w, event(EventKind.COMPLETED, agent=A, task_id="t-7", result={"notes": 3}), A)
    (sent,) = outcomes(w)
    assert (sent.key, sent.partition) == (b"t-7", partition_for("t-7", TOPICS.task_partitions))
    outcome = TaskOutcome.decode(sent.value)
    assert (outcome.task_id, outcome.kind, outcome.attempt, outcome.agent_id, outcome.epoch) == (
        "t-7",
        OutcomeKind.COMPLETED,
        1,
        A,
        1,
    )
    assert outcome.result == {"notes": 3} and outcome.error is None
    assert "t-7" not in w.table[A].tasks


def test_a_failure_is_an_outcome_with_the_error() -> None:
    w = worker()
    deliver(w, event(EventKind.CLAIMED, agent=A), A)
    deliver(w, event(EventKind.FAILED, agent=A, error="ValueError: no document"), A)
    (sent,) = outcomes(w)
    outcome = TaskOutcome.decode(sent.value)
    assert (outcome.kind, outcome.error, outcome.result) == (
        OutcomeKind.FAILED,
        "ValueError: no document",
        None,
    )


def test_a_copy_of_a_completion_publishes_nothing_more() -> None:
    w = worker()
    deliver(w, event(EventKind.CLAIMED, agent=A), A)
    done = event(EventKind.COMPLETED, agent=A, result=1)
    deliver(w, done, A)
    deliver(w, done, A)
    assert len(outcomes(w)) == 1


def test_a_zombies_late_completion_produces_no_second_outcome() -> None:
    w = worker()
    w.live.beat([B], T0, epoch=5)
    deliver(w, event(EventKind.CLAIMED, agent=A), A)
    # A is declared dead: its task moves to B as attempt 2, which completes.
    plan = (m.PlanEntry(task_id="t-1", attempt=2, target_agent_id=B, target_epoch=5),)
    w.apply(control(m.ControlKind.FENCE, agent=A, plan=plan), T0)
    deliver(w, redispatch(target=B, target_epoch=5), B)
    deliver(w, event(EventKind.CLAIMED, agent=B, epoch=5, attempt=2), B)
    deliver(w, event(EventKind.COMPLETED, agent=B, epoch=5, attempt=2, result="b's"), B)
    (first,) = outcomes(w)
    assert TaskOutcome.decode(first.value).result == "b's"
    # The fenced epoch comes back and reports attempt 1 completed: it does not count.
    deliver(w, event(EventKind.COMPLETED, agent=A, result="zombie's"), A)
    assert outcomes(w) == []
    assert w.gauge("agent_failover_events_rejected_total", {"reason": "fenced_epoch"}) == 1


def test_a_superseded_attempts_completion_publishes_nothing() -> None:
    w = worker()
    w.live.beat([B], T0, epoch=5)
    deliver(w, event(EventKind.CLAIMED, agent=A), A)
    deliver(w, event(EventKind.RELEASED, agent=A), A)  # A stops gracefully: t-1 moves to B
    (ctl,) = w.controls()
    w.apply(ctl, T0)
    # A (not fenced) still reports attempt 1 completed after the move was applied.
    deliver(w, event(EventKind.COMPLETED, agent=A, result="late"), A)
    assert outcomes(w) == []


def test_a_completion_applied_before_the_fence_is_the_outcome_and_the_fence_moves_nothing() -> None:
    w = worker()
    w.live.beat([B], T0, epoch=5)
    deliver(w, event(EventKind.CLAIMED, agent=A), A)
    deliver(w, event(EventKind.COMPLETED, agent=A, result="a's"), A)
    plan = (m.PlanEntry(task_id="t-1", attempt=2, target_agent_id=B, target_epoch=5),)
    w.apply(control(m.ControlKind.FENCE, agent=A, plan=plan), T0)
    assert [TaskOutcome.decode(s.value).result for s in outcomes(w)] == ["a's"]
    assert w.outbox.take(TOPICS.priority) == []  # attempt 2 never exists


def test_the_outcome_is_acknowledged_before_the_record_shows_the_task_finished() -> None:
    w = worker()
    deliver(w, event(EventKind.CLAIMED, agent=A), A)
    held_when_sent: list[bool] = []
    send = w.outbox.send

    async def watching(topic: str, key: bytes, value: bytes, partition: int) -> Any:
        if topic == TOPICS.outcomes:
            held_when_sent.append("t-1" in w.table[A].tasks)
        return await send(topic, key, value, partition)

    w.monitor.router._outcomes._send = watching
    deliver(w, event(EventKind.COMPLETED, agent=A), A)
    assert held_when_sent == [True]
    assert "t-1" not in w.table[A].tasks


def test_the_same_event_applied_twice_publishes_the_same_bytes() -> None:
    """A worker that dies between the outcome and the record change, or two workers during a
    rebalance, apply one event twice: both outcomes are byte for byte the same."""
    values = []
    for _ in range(2):
        w = worker()
        deliver(w, event(EventKind.CLAIMED, agent=A), A)
        deliver(w, event(EventKind.COMPLETED, agent=A, result={"x": [1, 2]}), A)
        (sent,) = outcomes(w)
        values.append(sent.value)
    assert values[0] == values[1]


def test_a_result_over_the_limit_from_an_agent_without_the_sdk_is_a_failure() -> None:
    big = "x" * m.MAX_RESULT_BYTES
    outcome = TaskOutcome.of_event(event(EventKind.COMPLETED, result=big))
    assert outcome.kind is OutcomeKind.FAILED and outcome.result is None
    assert outcome.error is not None and "over the 262,144-byte limit" in outcome.error


def test_a_failure_without_a_reason_still_makes_a_valid_outcome() -> None:
    outcome = TaskOutcome.of_event(event(EventKind.FAILED))
    assert TaskOutcome.decode(outcome.encode()).error == "failed (no reason given)"
