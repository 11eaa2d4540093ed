"""A submission waits for its task's outcome: the result, the failure, or a timeout that can be
waited out."""

from __future__ import annotations

import concurrent.futures
import re

import pytest

from agent_failover import models as m
from agent_failover.errors import OutcomeTimeout, TaskFailed
from agent_failover.sdk import Submission


def outcome(kind: m.OutcomeKind = m.OutcomeKind.COMPLETED, **fields: object) -> m.TaskOutcome:
    values: dict[str, object] = {
        "task_id": "t-1", "kind": kind, "attempt": 2, "agent_id": "a", "epoch": 7,
        "finished_at": 1.0, **fields,
    }  # fmt: skip
    return m.TaskOutcome(**values)  # type: ignore[arg-type]


def submission() -> tuple[Submission, concurrent.futures.Future[m.TaskOutcome]]:
    future: concurrent.futures.Future[m.TaskOutcome] = concurrent.futures.Future()
    return Submission("t-1", 3, 41, future), future


def test_the_result_is_what_the_handler_returned() -> None:
    sub, future = submission()
    assert not sub.done() and "pending" in repr(sub)
    future.set_result(outcome(result={"notes": 3}))
    assert sub.done() and sub.result(timeout=0) == {"notes": 3}
    assert sub.outcome().attempt == 2
    assert (sub.task_id, sub.partition, sub.offset) == ("t-1", 3, 41)


def test_a_failed_task_raises_with_its_error_and_outcome() -> None:
    sub, future = submission()
    failed = outcome(m.OutcomeKind.FAILED, error="ValueError: no document")
    future.set_result(failed)
    with pytest.raises(
        TaskFailed, match=re.escape("task t-1 failed (attempt 2 on a): ValueError")
    ) as info:
        sub.result()
    assert (info.value.task_id, info.value.error, info.value.outcome) == (
        "t-1",
        "ValueError: no document",
        failed,
    )
    assert sub.outcome() is failed  # the outcome itself does not raise


def test_a_timeout_is_retryable_and_waiting_again_sees_the_outcome() -> None:
    sub, future = submission()
    with pytest.raises(
        OutcomeTimeout, match=re.escape("task t-1: no outcome within 0.01 s")
    ) as info:
        sub.result(timeout=0.01)
    assert info.value.retryable and isinstance(info.value, TimeoutError)
    future.set_result(outcome())
    assert sub.result(timeout=0) is None
