"""The exactly-once ledger: the attempt chain decides which steps count, and the task's first
outcome must be the completion of its last attempt."""

from __future__ import annotations

from agent_failover import models as m
from agent_failover.dev.ledger import StepResult, judge

TASK = m.Task(task_id="t", task_type="demo")


def result(step: int, attempt: int = 1) -> StepResult:
    return StepResult("t", attempt, step, "a", attempt, f"s{step}", 0.0)


def completed(attempt: int) -> m.TaskEvent:
    return m.TaskEvent(
        kind=m.EventKind.COMPLETED,
        agent_id="a",
        epoch=attempt,
        at=0.0,
        task_id="t",
        attempt=attempt,
    )


def outcome(attempt: int, kind: m.OutcomeKind = m.OutcomeKind.COMPLETED) -> m.TaskOutcome:
    error = "boom" if kind is m.OutcomeKind.FAILED else None
    return m.TaskOutcome(
        task_id="t", kind=kind, attempt=attempt, agent_id="a", epoch=attempt, finished_at=0.0,
        error=error,
    )  # fmt: skip


def moved_after(step: int) -> m.Redispatch:
    ref = m.CheckpointRef(partition=0, offset=step, step=step, task_id="t", attempt=1, epoch=1)
    return m.Redispatch(
        task=TASK, attempt=2, target_agent_id="b", target_epoch=2,
        reason=m.DispatchReason.HEARTBEAT_TIMEOUT, decision_id="d", dispatched_at=0.0,
        from_agent_id="a", from_epoch=1, checkpoint=ref,
    )  # fmt: skip


def verdict(outcomes: list[m.TaskOutcome], *, moved: bool = False) -> list[str]:
    """Two steps; with ``moved``, attempt 1 did step 0 and attempt 2 step 1 and completed."""
    if moved:
        steps, moves, done = [result(0), result(1), result(1, 2)], [moved_after(0)], completed(2)
    else:
        steps, moves, done = [result(0), result(1)], [], completed(1)
    return judge({"t": 2}, steps, moves, [done], outcomes).tasks["t"].problems()


def test_one_outcome_completing_the_last_attempt_is_exactly_once() -> None:
    assert verdict([outcome(1)]) == []
    assert verdict([outcome(2)], moved=True) == []


def test_a_copy_of_the_outcome_is_fine_and_a_different_one_is_not() -> None:
    assert verdict([outcome(1), outcome(1)]) == []
    assert verdict([outcome(1), outcome(1, m.OutcomeKind.FAILED)]) == ["2 outcomes that differ"]


def test_no_outcome_or_one_of_an_earlier_attempt_is_a_problem() -> None:
    assert verdict([]) == ["no outcome"]
    assert verdict([outcome(1), outcome(2)], moved=True) == [
        "outcome completed by attempt 1, last is 2",
        "2 outcomes that differ",
    ]
    assert verdict([outcome(1, m.OutcomeKind.FAILED)]) == ["outcome failed by attempt 1, last is 1"]
