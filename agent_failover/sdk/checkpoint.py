"""Checkpoints: when ``progress()`` writes (a pure policy gate), and reading one back to resume."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from agent_failover.config import CheckpointMode, CheckpointPolicy
from agent_failover.errors import CodecError
from agent_failover.models import Checkpoint, CheckpointRef
from agent_failover.signing import Signer

log = logging.getLogger(__name__)


class ProgressGate:
    """Decides whether a ``progress()`` call writes a checkpoint, per the :class:`CheckpointPolicy`.

    Pure: the clock is injected (``time.monotonic`` by default) so tests can drive it.
    """

    def __init__(
        self, policy: CheckpointPolicy, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._policy = policy
        self._clock = clock
        # The interval counts from the start of the attempt: a task that reports progress from
        # its first second on does not write before the interval has passed.
        self._last_write = clock()

    def should_write(self) -> bool:
        """True if the progress reported now must be written."""
        mode = self._policy.mode
        if mode is CheckpointMode.EVERY_STEP:
            return True
        if mode is CheckpointMode.ON_DEMAND:
            return False
        return self._clock() - self._last_write >= self._policy.interval_s

    def written(self) -> None:
        """Note that a checkpoint was just written (by ``progress()`` or ``checkpoint()``)."""
        self._last_write = self._clock()


class CheckpointReader:
    """Reads the checkpoint record a redispatch names, by partition and offset.

    Owns one consumer that is assigned to one partition at a time (no group); used by one
    thread at a time (the core serialises the starts of re-dispatched tasks). A record not signed
    by the fleet (``signer``) is not used.
    """

    def __init__(
        self, conf: dict[str, object], topic: str, signer: Signer, timeout: float = 10.0
    ) -> None:
        self._conf = conf
        self._topic = topic
        self._signer = signer
        self._timeout = timeout
        self._consumer: Consumer | None = None

    def warm(self) -> None:
        """Create the consumer and learn the topic's leaders now, not on the first resume."""
        if self._consumer is None:
            self._consumer = Consumer(self._conf)
        self._consumer.list_topics(self._topic, timeout=self._timeout)

    def read(self, ref: CheckpointRef, task_id: str) -> Checkpoint | None:
        """The checkpoint at ``ref`` for ``task_id``, or None (logged) if it cannot be used.

        Never raises for a bad or missing record: a task must not be lost because its resume
        point is gone; it restarts from step 0 instead.
        """
        where = f"{self._topic}[{ref.partition}]@{ref.offset}"
        try:
            msg = self._fetch(ref)
        except KafkaException as exc:
            log.warning(
                "task %s: cannot read checkpoint %s (%s); starting from step 0", task_id, where, exc
            )
            return None
        if msg is None:
            log.warning("task %s: checkpoint %s not found; starting from step 0", task_id, where)
            return None
        try:
            checkpoint = self._signer.open(Checkpoint, msg)
        except CodecError as exc:
            log.warning(
                "task %s: checkpoint %s unreadable (%s); starting from step 0", task_id, where, exc
            )
            return None
        if checkpoint.task_id != task_id:
            log.warning(
                "task %s: checkpoint %s belongs to task %s; starting from step 0",
                task_id,
                where,
                checkpoint.task_id,
            )
            return None
        if checkpoint.step != ref.step:
            # The record is the authority; the ref's step is only a copy for the monitor's audit.
            log.warning(
                "task %s: checkpoint %s has step %d, redispatch said %d",
                task_id,
                where,
                checkpoint.step,
                ref.step,
            )
        return checkpoint

    def _fetch(self, ref: CheckpointRef) -> Message | None:
        if self._consumer is None:
            self._consumer = Consumer(self._conf)
        consumer = self._consumer
        consumer.assign([TopicPartition(self._topic, ref.partition, ref.offset)])
        try:
            deadline = time.monotonic() + self._timeout
            while (left := deadline - time.monotonic()) > 0:
                msg = consumer.poll(min(left, 0.5))
                if msg is None:
                    continue
                if msg.error():
                    raise KafkaException(msg.error())
                offset = msg.offset()
                if offset is None or offset < ref.offset:
                    continue
                # Compaction removed it if the first record we get lies past it.
                return msg if offset == ref.offset else None
            return None
        finally:
            consumer.unassign()

    def close(self) -> None:
        """Close the consumer if one was created."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
