"""Where an agent's records go and come from: Kafka, or memory in tests.

An agent core asks its transport for its clients once, when it starts
(:meth:`Transport.connect`): a writer for everything it sends, a source of the records of its
own partitions of ``control`` and ``tasks.priority``, and a reader of the checkpoint a dispatch
names. :class:`KafkaTransport` is the default and the only one for production;
:class:`agent_failover.sdk.testing.MemoryTransport` keeps every record in memory, so that a test
runs a whole :class:`~agent_failover.sdk.Agent` without a broker (as an HTTP client's tests run
with a mock transport).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from typing import Protocol

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from agent_failover.config import AgentConfig
from agent_failover.models import Checkpoint, CheckpointRef
from agent_failover.partitioner import partition_for
from agent_failover.sdk.checkpoint import CheckpointReader
from agent_failover.sdk.deadletters import AgentDeadLetters
from agent_failover.sdk.intake import assign_at_end
from agent_failover.sdk.kafka import (
    AGENT_DELIVERY_TIMEOUT_MS,
    ConfirmingProducer,
    DeliveryFuture,
    assigned_consumer_conf,
    broker_error,
    check_broker,
    producer_conf,
    resolve_fetch_wait,
)
from agent_failover.signing import warn_if_unsigned


class RecordWriter(Protocol):
    """Writes records; each future resolves once the record is stored (or with its error)."""

    def send(self, topic: str, key: str | bytes, value: bytes) -> DeliveryFuture:
        """Queue one record, signed with the fleet's key; never blocks."""
        ...

    def close(self, timeout: float) -> None:
        """Flush (bounded by ``timeout``) and stop."""
        ...


class RecordSource(Protocol):
    """The records of the partitions an agent listens to, in order."""

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        """Up to ``num_messages`` records, waiting up to ``timeout`` seconds for the first."""
        ...

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]:
        """A partition's low and high offsets: asked now, or (``cached``) as the last fetch
        brought them (-1 if none did yet)."""
        ...

    def close(self) -> None:
        """Stop reading."""
        ...


class CheckpointSource(Protocol):
    """Reads the checkpoint a dispatch names (like
    :class:`~agent_failover.sdk.checkpoint.CheckpointReader`)."""

    def read(self, ref: CheckpointRef, task_id: str) -> Checkpoint | None:
        """The checkpoint ``ref`` names for ``task_id``, or None (logged) if it cannot be used."""
        ...

    def close(self) -> None:
        """Release what it holds."""
        ...


@dataclasses.dataclass(frozen=True)
class AgentClients:
    """One agent epoch's clients."""

    writer: RecordWriter
    #: Positioned at the end of the agent's own partitions of ``control`` and ``tasks.priority``
    #: as they were when :meth:`Transport.connect` returned.
    listener: RecordSource
    checkpoints: CheckpointSource
    #: The agent's own ``control`` partition, with the offset the listener starts at: after a
    #: lapsed lease the agent reads it to its end before it acts again.
    control: TopicPartition


class Transport(Protocol):
    """How an agent reaches the fleet's topics."""

    def connect(
        self,
        config: AgentConfig,
        name: str,
        *,
        on_fatal: Callable[[BaseException], None] | None = None,
    ) -> AgentClients:
        """The clients of one agent epoch (``name``: a prefix for client and thread names);
        ``on_fatal`` is told when the writer fails for good (the agent must stop).

        Raises :class:`~agent_failover.errors.BrokerError` (or a subclass) if the topics cannot
        be reached; nothing is left open then.
        """
        ...


class KafkaTransport:
    """The Kafka cluster of ``config.kafka``: confluent-kafka clients, checked before use."""

    def connect(
        self,
        config: AgentConfig,
        name: str,
        *,
        on_fatal: Callable[[BaseException], None] | None = None,
    ) -> AgentClients:
        """Probe the broker and the topics, then create and position the clients.

        The writer never gives up on a record (the idempotent producer retries it in order):
        through a broker outage an agent's checkpoints pause its tasks instead of failing them.
        """
        kafka, topics = config.kafka, config.topics
        check_broker(kafka, topics)  # fails within seconds, naming address or topics
        warn_if_unsigned(kafka.signer, f"agent {config.agent_id}")
        fetch_wait = resolve_fetch_wait(config)
        with contextlib.ExitStack() as undo:
            writer = ConfirmingProducer(
                producer_conf(kafka, name, AGENT_DELIVERY_TIMEOUT_MS),
                name=name,
                signer=kafka.signer,
                on_fatal=on_fatal,
            )
            writer.start()
            undo.callback(writer.close, 0)
            try:
                listener = Consumer(assigned_consumer_conf(kafka, f"{name}-listener", fetch_wait))
            except KafkaException as exc:
                raise broker_error("cannot create the control consumer", exc) from exc
            undo.callback(listener.close)
            own = partition_for(config.agent_id, topics.agent_partitions)
            control, _priority = assign_at_end(
                listener,
                [TopicPartition(topics.control, own), TopicPartition(topics.priority, own)],
                timeout=config.close_timeout,
            )
            reader = CheckpointReader(
                assigned_consumer_conf(kafka, f"{name}-resume", fetch_wait),
                topics.checkpoints,
                kafka.signer,
                dead_letters=AgentDeadLetters(writer.send, topics.dead_letter, config.agent_id),
            )
            undo.callback(reader.close)
            try:
                reader.warm()  # a failover's resume should not pay for a new connection
            except KafkaException as exc:
                raise broker_error("cannot reach the checkpoints topic", exc) from exc
            undo.pop_all()
        return AgentClients(writer, listener, reader, control)
