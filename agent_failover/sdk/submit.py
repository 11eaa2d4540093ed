"""Submitting work: :class:`TaskSubmitter` writes tasks to the task topic, durably; the monitor
places each on an agent with a free slot."""

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
from agent_failover.signing import warn_if_unsigned


class TaskSubmitter:
    """Writes :class:`~agent_failover.models.Task` records to ``tasks`` (key: task id).

    Each submit returns once the broker confirmed the write (idempotent producer, ``acks=all``),
    signed with the fleet's key when ``kafka`` has one (``AGENT_FAILOVER_SIGNING_KEY``).
    Nothing connects before the first submit (or ``with``); then a probe checks that the broker
    answers and the task topic exists (:class:`~agent_failover.errors.BrokerUnreachable`,
    :class:`~agent_failover.errors.TopicSetupError`: nothing is written where nobody reads).
    No reuse after :meth:`close`::

        with TaskSubmitter("localhost:9092") as submitter:
            partition, offset = submitter.submit(Task(task_id="t1", task_type="demo"))
    """

    def __init__(self, kafka: KafkaConfig | str, topics: Topics | None = None) -> None:
        self._kafka = KafkaConfig.coerce(kafka)
        self._topics = topics or Topics()
        self._producer: ConfirmingProducer | None = None
        self._closed = False

    def _ready(self) -> ConfirmingProducer:
        if self._closed:
            raise LifecycleError("TaskSubmitter is closed")
        if self._producer is None:
            check_broker(self._kafka, self._topics, need=[self._topics.tasks])
            warn_if_unsigned(self._kafka.signer, "task submitter")
            producer = ConfirmingProducer(
                producer_conf(self._kafka, "af-submitter"),
                name="af-submitter",
                signer=self._kafka.signer,
            )
            producer.start()
            self._producer = producer
        return self._producer

    def submit(self, task: Task) -> tuple[int, int]:
        """Write one task; returns its ``(partition, offset)``. Raises :class:`BrokerError`."""
        return self.submit_many([task])[0]

    def submit_many(self, tasks: Iterable[Task]) -> list[tuple[int, int]]:
        """Write several tasks (batched); returns their ``(partition, offset)`` in order."""
        producer = self._ready()
        now = time.time()
        futures = [
            producer.send(
                self._topics.tasks,
                task.task_id,
                (task if task.submitted_at is not None else _stamped(task, now)).encode(),
            )
            for task in tasks
        ]
        out = []
        for future in futures:
            delivered = wait_delivered(future, "task submission")
            out.append((delivered.partition, delivered.offset))
        return out

    def close(self, timeout: float = 10.0) -> None:
        """Flush and close; idempotent."""
        self._closed = True
        if self._producer is not None:
            self._producer.close(timeout)
            self._producer = None

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
