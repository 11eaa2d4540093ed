"""A submitter reads its tasks' outcomes: the first one per task counts, one the fleet did not
sign (or one keyed by another task) is skipped, and nothing waits past the submitter's close."""

from __future__ import annotations

import secrets

import pytest

from agent_failover import models as m
from agent_failover.config import KafkaConfig, Topics
from agent_failover.errors import LifecycleError
from agent_failover.partitioner import partition_for
from agent_failover.sdk import TaskSubmitter
from agent_failover.signing import Signer
from tests.sdk.conftest import DEADLINE_S, write

pytestmark = pytest.mark.broker


def completed(task_id: str, result: m.JSON) -> m.TaskOutcome:
    return m.TaskOutcome(
        task_id=task_id, kind=m.OutcomeKind.COMPLETED, attempt=1, agent_id="a", epoch=1,
        finished_at=1.0, result=result,
    )  # fmt: skip


def test_the_first_signed_outcome_of_each_task_counts(sdk_bootstrap: str, topics: Topics) -> None:
    kafka = KafkaConfig(sdk_bootstrap, signing_key=secrets.token_urlsafe(24))
    fleet, forger = kafka.signer, Signer(secrets.token_bytes(24))
    with TaskSubmitter(kafka, topics) as submitter:
        one, two = submitter.submit_many(
            [m.Task(task_id="t-1", task_type="demo"), m.Task(task_id="t-2", task_type="demo")]
        )
        assert one.partition == partition_for("t-1", topics.task_partitions)
        out = topics.outcomes
        write(sdk_bootstrap, out, "t-1", completed("t-1", "forged"), forger)
        write(sdk_bootstrap, out, "t-2", completed("t-1", "t-1's, keyed t-2"), fleet)
        write(sdk_bootstrap, out, "t-1", completed("t-1", "first"), fleet)
        write(sdk_bootstrap, out, "t-1", completed("t-1", "second"), fleet)
        write(sdk_bootstrap, out, "t-2", completed("t-2", "t-2's"), fleet)
        assert one.result(timeout=DEADLINE_S) == "first"
        assert two.result(timeout=DEADLINE_S) == "t-2's"


def test_closing_the_submitter_ends_every_wait(sdk_bootstrap: str, topics: Topics) -> None:
    submitter = TaskSubmitter(sdk_bootstrap, topics)
    pending = submitter.submit(m.Task(task_id="t-1", task_type="demo"))
    submitter.close()
    with pytest.raises(LifecycleError, match="closed before task t-1 ended"):
        pending.result(timeout=DEADLINE_S)
    with pytest.raises(LifecycleError):
        submitter.submit(m.Task(task_id="t-2", task_type="demo"))
