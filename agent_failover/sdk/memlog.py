"""The in-memory log behind :class:`~agent_failover.sdk.testing.MemoryTransport`.

:class:`MemoryLog` keeps every topic as lists in this process, partitioned as on a broker (the
project's partitioner, the topic set's partition counts), and can be taken down for an outage.
An agent's clients read and write it: :class:`MemoryWriter` (the producer),
:class:`MemoryListener` (the assigned consumer of its own partitions) and
:class:`MemoryCheckpoints` (the checkpoint reader, with the Kafka reader's checks). They behave as
the Kafka clients do where the agent can tell: a write unanswered during an outage, nothing read,
a watermark query failing with a transport error.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
import time
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from agent_failover.config import Topics
from agent_failover.errors import BrokerError, LifecycleError
from agent_failover.models import CheckpointRef
from agent_failover.partitioner import partition_for
from agent_failover.sdk.checkpoint import CheckpointReader
from agent_failover.sdk.deadletters import AgentDeadLetters
from agent_failover.sdk.kafka import Delivered, DeliveryFuture
from agent_failover.signing import Signer
from agent_failover.topics import topic_specs


@dataclasses.dataclass(frozen=True, slots=True)
class _Stored:
    key: bytes | None
    value: bytes
    headers: list[tuple[str, str | bytes | None]] | None


class MemoryLog:
    """The records of every topic, by partition; readers wait on ``changed``."""

    def __init__(self, topics: Topics) -> None:
        self.partitions = {spec.name: spec.partitions for spec in topic_specs(topics)}
        self.changed = threading.Condition()
        self._logs: dict[tuple[str, int], list[_Stored]] = {}
        # While down (an outage): writes wait here, in order, and readers get nothing.
        self.down = False
        self._held: list[tuple[str, bytes, bytes, Signer, DeliveryFuture, Callable[[], None]]] = []

    def hold_or_append(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        signer: Signer,
        future: DeliveryFuture,
        written: Callable[[], None],
    ) -> None:
        """Store a record and resolve ``future`` (then call ``written``), or hold both until
        the outage ends."""
        with self.changed:
            if self.down:
                self._held.append((topic, key, value, signer, future, written))
                return
            stored = self._stored(topic, key, value, signer)
        _settle(future, stored, written)

    def _stored(
        self, topic: str, key: bytes, value: bytes, signer: Signer
    ) -> Delivered | BrokerError:
        try:
            return self.append(topic, key, value, signer)
        except BrokerError as exc:
            return exc

    def append(self, topic: str, key: bytes, value: bytes, signer: Signer) -> Delivered:
        """Store a record now (signed by ``signer``); raises :class:`BrokerError` for a topic
        the topic set does not have."""
        count = self.partitions.get(topic)
        if count is None:  # as on a broker that creates no topic on write
            raise BrokerError(f"write to {topic} failed: unknown topic", retryable=False)
        partition = partition_for(key, count)
        headers = signer.headers(topic, key, value)
        with self.changed:
            log = self._logs.setdefault((topic, partition), [])
            log.append(_Stored(key, value, None if headers is None else list(headers)))
            self.changed.notify_all()
            return Delivered(topic, partition, len(log) - 1)

    def end(self, topic: str, partition: int) -> int:
        """The next offset of a partition (its high watermark)."""
        with self.changed:
            return len(self._logs.get((topic, partition), ()))

    def read(self, topic: str, partition: int, offset: int, most: int) -> list[Message]:
        """At most ``most`` records of a partition from ``offset``, as consumed messages."""
        with self.changed:
            stored = self._logs.get((topic, partition), [])[offset : offset + most]
        return [
            Message(
                topic=topic,
                partition=partition,
                offset=offset + n,
                key=s.key,
                value=s.value,
                headers=s.headers,
            )
            for n, s in enumerate(stored)
        ]

    def values(self, topic: str) -> list[bytes]:
        """Every value of ``topic``: partition by partition, each in offset order."""
        with self.changed:
            return [
                s.value
                for (name, _), log in sorted(self._logs.items())
                if name == topic
                for s in log
            ]

    def set_down(self, down: bool) -> None:
        """Start or end an outage; its end stores the held writes in the order they came."""
        with self.changed:
            self.down = down
            held: list[tuple[str, bytes, bytes, Signer, DeliveryFuture, Callable[[], None]]] = []
            if not down:
                held, self._held = self._held, []
            # Stored under the lock, so that no new write overtakes them; answered after it.
            answers = [(r[4], self._stored(*r[:4]), r[5]) for r in held]
            self.changed.notify_all()
        for future, stored, written in answers:
            _settle(future, stored, written)


def _settle(
    future: DeliveryFuture, stored: Delivered | BrokerError, written: Callable[[], None]
) -> None:
    if isinstance(stored, BrokerError):
        future.set_exception(stored)
    else:
        future.set_result(stored)
        written()


class MemoryWriter:
    """An agent's writer: each record is stored (and its future resolved) at once, or when an
    outage ends."""

    def __init__(
        self, topics: MemoryLog, signer: Signer, written: Callable[[str, bytes], None]
    ) -> None:
        self._topics = topics
        self._signer = signer
        self._written = written
        self._closed = False

    def send(self, topic: str, key: str | bytes, value: bytes) -> DeliveryFuture:
        """Store a record; the future resolves once it is stored."""
        if self._closed:
            raise LifecycleError("producer is not running")
        future: DeliveryFuture = concurrent.futures.Future()
        raw = key.encode() if isinstance(key, str) else key
        self._topics.hold_or_append(
            topic, raw, value, self._signer, future, lambda: self._written(topic, value)
        )
        return future

    def close(self, timeout: float) -> None:
        """Refuse writes from now on (nothing is buffered to flush)."""
        self._closed = True


class MemoryListener:
    """An agent's reader of its own partitions of ``control`` and ``tasks.priority``, from their
    end when it was made."""

    def __init__(self, topics: MemoryLog, partitions: list[tuple[str, int]]) -> None:
        self._topics = topics
        self._positions = {tp: topics.end(*tp) for tp in partitions}
        self._closed = False

    def position(self, topic: str, partition: int) -> int:
        """The next offset it reads of a partition."""
        with self._topics.changed:
            return self._positions[(topic, partition)]

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        """Up to ``num_messages`` new records, waiting at most ``timeout`` s (-1: no limit)."""
        deadline = None if timeout < 0 else time.monotonic() + timeout
        changed = self._topics.changed
        with changed:
            while True:
                out: list[Message] = []
                for (topic, partition), offset in (
                    () if self._topics.down else self._positions.items()
                ):
                    got = self._topics.read(topic, partition, offset, num_messages - len(out))
                    self._positions[(topic, partition)] = offset + len(got)
                    out += got
                left = None if deadline is None else deadline - time.monotonic()
                if out or self._closed or (left is not None and left <= 0):
                    return out
                changed.wait(left)

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]:
        """A partition's low and high watermarks; fails as a broker would during an outage."""
        if self._topics.down:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "in-memory outage"))
        return 0, self._topics.end(partition.topic, partition.partition)

    def close(self) -> None:
        """Stop reading: a waiting :meth:`consume` returns."""
        self._closed = True
        with self._topics.changed:
            self._topics.changed.notify_all()


class MemoryCheckpoints(CheckpointReader):
    """Reads checkpoints from memory; the checks on what it finds are the Kafka reader's."""

    def __init__(
        self, topics: MemoryLog, topic: str, signer: Signer, dead_letters: AgentDeadLetters
    ) -> None:
        super().__init__({}, topic, signer, dead_letters=dead_letters)
        self._stored = topics

    def warm(self) -> None:
        """Nothing to connect."""

    def _fetch(self, ref: CheckpointRef) -> Message | str:
        end = self._stored.end(self._topic, ref.partition)
        if ref.offset >= end:
            return f"the partition ends at offset {end}"
        (found,) = self._stored.read(self._topic, ref.partition, ref.offset, 1)
        return found

    def close(self) -> None:
        """Nothing to close."""
