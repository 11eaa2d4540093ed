"""The heartbeat fast path: a plain confluent-kafka consumer in a thread, beside faust.

faust's per-event overhead caps a worker near 5.4k records/s (about 2k/s with a table write per
record), far below the 20k heartbeats/s a worker must absorb (BROKER_FACTS.md). Heartbeats are
therefore never a faust stream: this thread batch-consumes them, validates them with orjson and
keeps the newest one per agent id in memory. The detection timer reads :meth:`snapshot`.

The thread is assigned by hand (no consumer group) exactly the partitions faust assigned this
worker for the agent-keyed topics, starting at their end: liveness before the takeover says
nothing about now, and the grace period covers the first heartbeat interval.

The same consumer also reads the one-partition ``fleet`` topic (from its end) into the
:class:`~streams.fleet.FleetDirectory`: other workers' summaries of their healthy agents, a few
records per second, so a separate client is not worth its connections.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection
from typing import Any

import orjson
from confluent_kafka import OFFSET_END, Consumer, KafkaError, Message, Producer, TopicPartition

from agent_failover.config import KafkaConfig, Topics
from agent_failover.errors import CodecError
from agent_failover.models import SCHEMA_VERSION, DeadLetter, FleetSummary, Heartbeat, Pool
from agent_failover.partitioner import partition_for
from streams.deadletters import dead_letter
from streams.fleet import FleetDirectory
from streams.state import LiveEntry

log = logging.getLogger(__name__)

_POOLS = {"active": Pool.ACTIVE, "standby": Pool.STANDBY, None: Pool.ACTIVE}


def decode_heartbeat(raw: bytes | None) -> LiveEntry:
    """Validate a heartbeat and return it as a :class:`LiveEntry` (``last_seen`` left at 0).

    The common case is checked inline (about 5x faster than building a :class:`Heartbeat`); any
    record the inline checks do not accept goes through :meth:`Heartbeat.decode`, which accepts
    exactly what the schema allows and raises :class:`CodecError` with the reason otherwise.
    """
    try:
        d = orjson.loads(raw) if raw is not None else None
    except orjson.JSONDecodeError:
        d = None
    if type(d) is dict:
        agent_id, epoch, seq, cap = (
            d.get("agent_id"),
            d.get("epoch"),
            d.get("seq"),
            d.get("capacity"),
        )
        in_flight, pool, draining = d.get("in_flight", ()), d.get("pool"), d.get("draining", False)
        interval = d.get("interval_s")
        if (
            d.get("schema_version") == SCHEMA_VERSION
            and type(agent_id) is str
            and agent_id
            and type(epoch) is int
            and type(seq) is int
            and seq >= 0
            and type(cap) is int
            and cap >= 0
            and type(d.get("sent_at")) is float
            and type(interval) is float
            and interval > 0
            and type(in_flight) is list
            and all(type(t) is str for t in in_flight)
            and pool in _POOLS
            and type(draining) is bool
        ):
            return LiveEntry(
                agent_id, epoch, seq, 0.0, cap, tuple(in_flight), _POOLS[pool], draining
            )
    hb = Heartbeat.decode(raw)  # raises CodecError with the reason
    return LiveEntry(
        hb.agent_id, hb.epoch, hb.seq, 0.0, hb.capacity, hb.in_flight, hb.pool, hb.draining
    )


class LivenessTracker:
    """Newest heartbeat per agent id for the partitions this worker owns, from a thread.

    ``on_heartbeats(n)`` and ``on_dead_letter(topic)`` are called from the thread (metrics). With
    a ``directory``, the thread also feeds it the ``fleet`` topic's summaries.
    """

    def __init__(
        self,
        kafka: KafkaConfig,
        topics: Topics,
        *,
        on_heartbeats: Callable[[int], None] | None = None,
        on_dead_letter: Callable[[str], None] | None = None,
        directory: FleetDirectory | None = None,
        batch_size: int = 2000,
        poll_timeout: float = 0.1,
    ) -> None:
        self._kafka = kafka
        self._topics = topics
        self._on_heartbeats = on_heartbeats
        self._on_dead_letter = on_dead_letter
        self._directory = directory
        self._batch_size = batch_size
        self._poll_timeout = poll_timeout
        self._entries: dict[str, LiveEntry] = {}
        self._partition_of: dict[str, int] = {}
        self._wanted: frozenset[int] = frozenset()
        self._assigned: frozenset[int] = frozenset()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_poll = time.monotonic()

    # -- called from the event loop -------------------------------------------------------------

    def start(self) -> None:
        """Start the consumer thread (once)."""
        if self._thread is not None:
            raise RuntimeError("LivenessTracker already started")
        self.last_poll = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="af-liveness", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread and close its clients."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def assign(self, partitions: Collection[int]) -> None:
        """Consume exactly these heartbeat partitions (new ones from their end)."""
        with self._lock:
            self._wanted = frozenset(partitions)

    def snapshot(self) -> dict[str, LiveEntry]:
        """A copy of the newest heartbeat per agent id (entries are never mutated)."""
        return self._entries.copy()  # dict.copy is atomic under the GIL

    @property
    def assigned(self) -> frozenset[int]:
        """The partitions the thread currently consumes."""
        return self._assigned

    # -- the thread -----------------------------------------------------------------------------

    def _clients(self) -> tuple[Consumer, Producer]:
        base: dict[str, Any] = {
            **self._kafka.as_librdkafka_dict(),
            "logger": logging.getLogger(__name__ + ".librdkafka"),
        }
        consumer = Consumer(
            {
                **base,
                # Never joins: partitions are assigned by hand. librdkafka still wants an id.
                "group.id": f"af-liveness-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "latest",
                # Liveness tolerates 100 ms of latency; a smaller wait only burns CPU on idle
                # partitions (Tansu does not wake a waiting fetch on new data).
                "fetch.wait.max.ms": 100,
            }
        )
        producer = Producer({**base, "linger.ms": 5, "partitioner": "murmur2_random"})
        return consumer, producer

    def _run(self) -> None:
        consumer, producer = self._clients()
        try:
            if self._directory is not None:
                # From the end: summaries are republished every half second, older ones are stale.
                consumer.incremental_assign([TopicPartition(self._topics.fleet, 0, OFFSET_END)])
            while not self._stopping.is_set():
                try:
                    self._sync_assignment(consumer)
                    if not self._assigned and self._directory is None:
                        self.last_poll = time.monotonic()
                        self._stopping.wait(self._poll_timeout)
                        continue
                    batch = consumer.consume(self._batch_size, self._poll_timeout)
                    now = time.monotonic()
                    self.last_poll = now
                    self._handle(batch, now, producer)
                    producer.poll(0)
                except Exception:  # never die: a dead thread would stall every decision
                    log.exception("heartbeat consumer failed; retrying")
                    self._stopping.wait(1.0)
        finally:
            consumer.close()
            producer.flush(5.0)

    def _sync_assignment(self, consumer: Consumer) -> None:
        with self._lock:
            wanted = self._wanted
        if wanted == self._assigned:
            return
        topic = self._topics.heartbeats
        added, removed = wanted - self._assigned, self._assigned - wanted
        if removed:
            consumer.incremental_unassign([TopicPartition(topic, p) for p in sorted(removed)])
            # Liveness of agents now owned elsewhere must not linger here.
            for agent_id, partition in list(self._partition_of.items()):
                if partition in removed:
                    self._entries.pop(agent_id, None)
        if added:
            consumer.incremental_assign(
                [TopicPartition(topic, p, OFFSET_END) for p in sorted(added)]
            )
        self._assigned = wanted
        log.info("heartbeat partitions: %s", sorted(wanted))

    def _handle(self, batch: list[Message], now: float, producer: Producer) -> None:
        entries, partition_of = self._entries, self._partition_of
        partitions = self._topics.agent_partitions
        fleet = self._topics.fleet
        count = 0
        for msg in batch:
            error = msg.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("heartbeat consumer: %s", error)
                continue
            if msg.topic() == fleet:
                self._on_fleet(msg, now, producer)
                continue
            try:
                entry = decode_heartbeat(msg.value())
            except CodecError as exc:
                self._dead_letter(producer, msg, str(exc))
                continue
            agent_id = entry.agent_id
            expected = partition_of.get(agent_id)
            if expected is None:
                expected = partition_of[agent_id] = partition_for(agent_id, partitions)
            if expected != msg.partition():
                reason = (
                    f"heartbeat of {agent_id!r} in partition {msg.partition()}, its key hashes to "
                    f"{expected}: produce keyed by agent id with the murmur2 partitioner"
                )
                self._dead_letter(producer, msg, reason)
                continue
            current = entries.get(agent_id)
            if current is not None and (
                entry.epoch < current.epoch
                or (entry.epoch == current.epoch and entry.seq < current.seq)
            ):
                continue  # an older incarnation still beating: it proves nothing about the newest
            entry.last_seen = now
            entries[agent_id] = entry
            count += 1
        if count and self._on_heartbeats is not None:
            self._on_heartbeats(count)

    def _on_fleet(self, msg: Message, now: float, producer: Producer) -> None:
        if self._directory is None:
            return
        try:
            summary = FleetSummary.decode(msg.value())
        except CodecError as exc:
            self._dead_letter(producer, msg, str(exc))
            return
        self._directory.receive(summary, now)

    def _dead_letter(self, producer: Producer, msg: Message, reason: str) -> None:
        record: DeadLetter = dead_letter(
            topic=msg.topic() or self._topics.heartbeats,
            partition=msg.partition() or 0,
            offset=msg.offset() or 0,
            key=msg.key(),
            value=msg.value(),
            reason=reason,
            at=time.time(),
        )
        try:
            producer.produce(self._topics.dead_letter, record.encode(), msg.key())
        except BufferError:
            producer.poll(0.5)
            producer.produce(self._topics.dead_letter, record.encode(), msg.key())
        if self._on_dead_letter is not None:
            self._on_dead_letter(msg.topic() or self._topics.heartbeats)
