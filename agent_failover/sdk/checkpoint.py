"""Checkpoints: when ``progress()`` writes (a pure policy gate), and reading one back to resume."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from agent_failover.config import CheckpointMode, CheckpointPolicy
from agent_failover.errors import CodecError
from agent_failover.models import Checkpoint, CheckpointRef, internal_reason
from agent_failover.sdk.deadletters import AgentDeadLetters
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
    thread at a time (the core serialises the starts of re-dispatched tasks). The record at the
    offset is used only if the fleet signed it (``signer``) and it is the checkpoint the
    reference names: same task, attempt, epoch and step. A reference past the partition's end
    is refused at once, without waiting for a record that will never come. A record there that
    does not decode, or whose handling raises, is set aside by ``dead_letters`` (when given):
    only agents read checkpoints, so nobody else would.
    """

    def __init__(
        self,
        conf: dict[str, object],
        topic: str,
        signer: Signer,
        timeout: float = 10.0,
        dead_letters: AgentDeadLetters | None = None,
    ) -> None:
        # An offset outside the partition is an error at once, never a silent jump to its end.
        self._conf = {**conf, "auto.offset.reset": "error"}
        self._topic = topic
        self._signer = signer
        self._timeout = timeout
        self._dead_letters = dead_letters
        self._consumer: Consumer | None = None

    def warm(self) -> None:
        """Create the consumer and learn the topic's leaders now, not on the first resume."""
        if self._consumer is None:
            self._consumer = Consumer(self._conf)
        self._consumer.list_topics(self._topic, timeout=self._timeout)

    def read(self, ref: CheckpointRef, task_id: str) -> Checkpoint | None:
        """The checkpoint ``ref`` names for ``task_id``, or None (logged) if it cannot be used.

        Never raises: a task must not be lost because its resume point is gone, false or
        unreadable; it restarts from step 0 instead.
        """
        where = f"{self._topic}[{ref.partition}]@{ref.offset}"
        checkpoint, why = None, ""
        if ref.task_id != task_id:
            why = f"it names task {ref.task_id!r}"
        else:
            try:
                found = self._fetch(ref)
                if isinstance(found, str):
                    why = found
                else:
                    checkpoint, why = self._use(ref, found)
            except KafkaException as exc:
                why = f"cannot read it ({exc})"
            except Exception as exc:  # a bug fetching it must not lose the task either
                log.exception("task %s: fetching checkpoint %s failed", task_id, where)
                why = internal_reason(exc)
        if why:
            log.warning(
                "task %s: checkpoint %s refused, %s; starting from step 0", task_id, where, why
            )
            return None
        return checkpoint

    def _use(self, ref: CheckpointRef, msg: Message) -> tuple[Checkpoint | None, str]:
        """The checkpoint in ``msg`` if it is the one ``ref`` names, else None and why not. A
        record that does not decode or whose handling raises is set aside."""
        try:
            checkpoint = self._signer.open(Checkpoint, msg)
            if ref.names(checkpoint):
                return checkpoint, ""
            return None, (
                f"it holds task {checkpoint.task_id!r} attempt {checkpoint.attempt} epoch "
                f"{checkpoint.epoch} step {checkpoint.step}, the redispatch named attempt "
                f"{ref.attempt} epoch {ref.epoch} step {ref.step}"
            )
        except CodecError as exc:
            if self._dead_letters is not None:
                self._dead_letters.send(msg, str(exc), exc.refusal)
            return None, f"unreadable ({exc})"
        except Exception as exc:  # the record's: a bug reading it must not lose the task
            if self._dead_letters is not None:
                self._dead_letters.internal(msg, exc)
            return None, internal_reason(exc)

    def _fetch(self, ref: CheckpointRef) -> Message | str:
        """The record at ``ref``'s offset, or why there is none."""
        if self._consumer is None:
            self._consumer = Consumer(self._conf)
        consumer = self._consumer
        tp = TopicPartition(self._topic, ref.partition)
        low, high = consumer.get_watermark_offsets(tp, timeout=self._timeout, cached=False)
        if ref.offset < low:
            return f"the partition now starts at offset {low}"
        if high <= 0:
            return "the partition is empty"
        # Beyond the reported end, start at the last record: its fetch brings the partition's
        # true end (some brokers report a short end, docs/tansu.md), so a reference past it is
        # refused after one round trip.
        start = ref.offset if ref.offset < high else high - 1
        consumer.assign([TopicPartition(self._topic, ref.partition, start)])
        try:
            deadline = time.monotonic() + self._timeout
            while (left := deadline - time.monotonic()) > 0:
                msg = consumer.poll(min(left, 0.5))
                if msg is None:
                    continue
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._AUTO_OFFSET_RESET:
                        return f"the offset is outside the partition ({error.str()})"
                    raise KafkaException(error)
                offset = msg.offset()
                if offset is None or offset < ref.offset:
                    _low, end = consumer.get_watermark_offsets(tp, cached=True)
                    if end >= 0 and ref.offset >= end:
                        return f"the partition ends at offset {end}"
                    continue
                # Compaction removed it if the first record we get lies past it.
                return msg if offset == ref.offset else "not found (compacted away)"
            return f"not found within {self._timeout:g} s"
        finally:
            consumer.unassign()

    def close(self) -> None:
        """Close the consumer if one was created."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
