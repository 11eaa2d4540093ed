"""Submitting work: :class:`TaskSubmitter` writes tasks to the task topic, durably; the monitor
places each on an agent with a free slot, and publishes how it ended (:class:`Submission`)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from types import TracebackType
from typing import Self

from agent_failover.config import KafkaConfig, Topics
from agent_failover.errors import LifecycleError
from agent_failover.models import Task
from agent_failover.sdk.kafka import (
    ConfirmingProducer,
    check_broker,
    producer_conf,
    wait_delivered,
)
from agent_failover.sdk.outcomes import OutcomeWatcher, Submission
from agent_failover.signing import warn_if_unsigned


class TaskSubmitter:
    """Writes :class:`~agent_failover.models.Task` records to ``tasks`` (key: task id), and hands
    back a :class:`Submission` that waits for each task's outcome.

    Each submit returns once the broker confirmed the write (idempotent producer, ``acks=all``),
    signed with the fleet's key when ``kafka`` has one (``AGENT_FAILOVER_SIGNING_KEY``).
    Nothing connects before the first submit (or ``with``); then a probe checks that the broker
    answers and the task and outcome topics exist
    (:class:`~agent_failover.errors.BrokerUnreachable`,
    :class:`~agent_failover.errors.TopicSetupError`: nothing is written where nobody reads).
    A thread reads the outcomes of the tasks submitted (their partitions, from the first submit
    to each on): wait for them before :meth:`close`. Task ids must be unique. No reuse after
    :meth:`close`::

        with TaskSubmitter("localhost:9092") as submitter:
            submission = submitter.submit(Task(task_id="t1", task_type="demo"))
            print(submission.result(timeout=60))  # the handler's return value
    """

    def __init__(self, kafka: KafkaConfig | str, topics: Topics | None = None) -> None:
        self._kafka = KafkaConfig.coerce(kafka)
        self._topics = topics or Topics()
        self._producer: ConfirmingProducer | None = None
        self._watcher: OutcomeWatcher | None = None
        self._closed = False

    def _ready(self) -> tuple[ConfirmingProducer, OutcomeWatcher]:
        if self._closed:
            raise LifecycleError("TaskSubmitter is closed")
        if self._producer is None or self._watcher is None:
            topics = self._topics
            check_broker(self._kafka, topics, need=[topics.tasks, topics.outcomes])
            warn_if_unsigned(self._kafka.signer, "task submitter")
            watcher = OutcomeWatcher(self._kafka, topics, name="af-submitter")
            producer = ConfirmingProducer(
                producer_conf(self._kafka, "af-submitter"),
                name="af-submitter",
                signer=self._kafka.signer,
            )
            try:
                producer.start()
            except BaseException:
                watcher.close()
                raise
            watcher.start()
            self._watcher, self._producer = watcher, producer
        return self._producer, self._watcher

    def submit(self, task: Task) -> Submission:
        """Write one task; returns its :class:`Submission`. Raises :class:`BrokerError`."""
        return self.submit_many([task])[0]

    def submit_many(self, tasks: Iterable[Task]) -> list[Submission]:
        """Write several tasks (batched); returns their :class:`Submission` in order."""
        producer, watcher = self._ready()
        now = time.time()
        tasks = list(tasks)
        outcomes = [watcher.watch(task.task_id) for task in tasks]  # before the writes
        futures = [
            producer.send(
                self._topics.tasks,
                task.task_id,
                (task if task.submitted_at is not None else _stamped(task, now)).encode(),
            )
            for task in tasks
        ]
        out = []
        for task, future, outcome in zip(tasks, futures, outcomes, strict=True):
            delivered = wait_delivered(future, "task submission")
            out.append(Submission(task.task_id, delivered.partition, delivered.offset, outcome))
        return out

    def close(self, timeout: float = 10.0) -> None:
        """Flush and close; idempotent. Submissions still waiting for an outcome get a
        :class:`LifecycleError`."""
        self._closed = True
        if self._producer is not None:
            self._producer.close(timeout)
            self._producer = None
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None

    def __enter__(self) -> Self:
        self._ready()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _stamped(task: Task, now: float) -> Task:
    return Task(
        task_id=task.task_id, task_type=task.task_type, payload=task.payload, submitted_at=now
    )
