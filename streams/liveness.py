"""The heartbeat fast path: a plain confluent-kafka consumer in a thread, beside faust.

faust's per-event overhead caps a worker near 5.4k records/s (about 2k/s with a table write per
record), far below the 20k heartbeats/s a worker must absorb (``docs/tansu.md``).
Heartbeats are therefore never a faust stream: this thread batch-consumes them, validates them
with the model's decoder and keeps the newest one per agent id in memory. The detection timer
asks only for what it needs each tick: the entries that went silent (:meth:`expired`, cheap
because the map is kept in ``last_seen`` order) and the agents whose epoch changed
(:meth:`drain_changed`).

The thread is assigned by hand (no consumer group) exactly the partitions faust assigned this
worker for the agent-keyed topics, starting at their end: liveness before the takeover says
nothing about now. After each poll it notes its position and the fetched high watermark of each
(:class:`~streams.catchup.CatchUp`): a partition is :attr:`~LivenessTracker.caught_up` once read to
its end, and :meth:`~LivenessTracker.behind` and :meth:`~LivenessTracker.lag` say how far the
thread trails the broker, so that detection neither starts before every live agent can have been
heard nor decides on a backlog.

The same consumer also reads the one-partition ``fleet`` topic (from its end) into the
:class:`~streams.fleet.FleetDirectory`: other workers' summaries of their healthy agents, a few
records per second, so a separate client is not worth its connections.

No record stops the thread or the rest of its batch: one that does not decode, or whose handling
raises (reason ``internal: <type>``), is dead-lettered and the next one read. Dead letters are
queued without waiting (a copy the broker refuses is counted lost from its delivery report), so
the thread keeps polling whatever it reads, and the stall guard stays quiet.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection
from typing import Any

from confluent_kafka import (
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from agent_failover.config import KafkaConfig, Topics
from agent_failover.errors import CodecError, LifecycleError, Refusal
from agent_failover.logs import kafka_log_settings, rate_limited
from agent_failover.models import (
    FleetSummary,
    Heartbeat,
)
from agent_failover.partitioner import partition_for
from agent_failover.signing import Signer
from agent_failover.streams.catchup import CatchUp, PartitionLag
from agent_failover.streams.fleet import FleetDirectory
from agent_failover.streams.kafkastats import STATS_INTERVAL
from agent_failover.streams.state import LiveEntry
from agent_failover.streams.threadletters import ThreadLetters

log = logging.getLogger(__name__)
#: Lines about bad records: whoever writes them chooses how many.
refused = rate_limited(f"{__name__}.refused")

#: The heartbeat consumer's fetch wait. Liveness tolerates 100 ms of latency, and on Apache Kafka
#: new data ends a waiting fetch early. The development broker does not wake a waiting fetch, so
#: there the monitor passes a shorter wait (``compat.TANSU_FETCH_MAX_WAIT_MS``): reading newly
#: assigned partitions to their end took 0.3 s at 100 ms and 0.03-0.05 s at 10 ms, for about 1 %
#: of a core more while idle (measured 2026-11-30).
FETCH_WAIT_MS = 100


def decode_heartbeat(raw: bytes | None) -> LiveEntry:
    """Validate a heartbeat and return it as a :class:`LiveEntry` (``last_seen`` left at 0).

    Raises :class:`CodecError` with the reason for anything :meth:`Heartbeat.decode` refuses.
    There is no inline fast path: with msgspec the model's own decoder costs about 1.5x an
    inline check, not enough to keep a second validator (``docs/architecture.md``).
    """
    return live_entry(Heartbeat.decode(raw))


def live_entry(hb: Heartbeat) -> LiveEntry:
    """A valid heartbeat as a :class:`LiveEntry` (``last_seen`` left at 0)."""
    return LiveEntry(
        hb.agent_id,
        hb.epoch,
        hb.seq,
        0.0,
        hb.capacity,
        hb.in_flight,
        hb.pool,
        hb.draining,
        hb.interval_s,
        hb.sent_at,
        hb.heartbeat_timeout_s,
    )


class LivenessTracker:
    """Newest heartbeat per agent id for the partitions this worker owns, from a thread.

    Called from the thread, for metrics: ``on_heartbeats(sent_at, received_at)`` once per batch
    with the valid heartbeats' ``sent_at`` and the wall time they were received;
    ``on_dead_letter(topic, refusal)`` per bad record, ``on_dead_letter_lost(topic)`` per dead
    letter the broker did not take; ``on_stats(json)`` with librdkafka's
    statistics every :data:`~streams.kafkastats.STATS_INTERVAL`. With a ``directory``, the thread
    also feeds it the ``fleet`` topic's summaries. Records are checked and dead letters signed
    with ``kafka``'s signer: a heartbeat or summary the fleet did not sign is dead-lettered.
    ``fetch_wait_ms`` is the consumer's ``fetch.wait.max.ms`` (see :data:`FETCH_WAIT_MS`).
    """

    def __init__(
        self,
        kafka: KafkaConfig,
        topics: Topics,
        *,
        on_heartbeats: Callable[[list[float], float], None] | None = None,
        on_dead_letter: Callable[[str, str], None] | None = None,
        on_dead_letter_lost: Callable[[str], None] | None = None,
        on_stats: Callable[[str], None] | None = None,
        directory: FleetDirectory | None = None,
        batch_size: int = 2000,
        poll_timeout: float = 0.1,
        fetch_wait_ms: int = FETCH_WAIT_MS,
    ) -> None:
        self._kafka = kafka
        self._signer: Signer = kafka.signer
        self._topics = topics
        self._on_heartbeats = on_heartbeats
        self._letters = ThreadLetters(
            topics.dead_letter,
            self._signer,
            refused,
            fallback=topics.heartbeats,
            on_dead_letter=on_dead_letter,
            on_lost=on_dead_letter_lost,
        )
        self._on_stats = on_stats
        self._directory = directory
        self._own_key = directory.monitor_id.encode() if directory is not None else None
        self._batch_size = batch_size
        self._poll_timeout = poll_timeout
        self._fetch_wait_ms = fetch_wait_ms
        # Newest heartbeat per agent id, in last_seen order (an update moves the key to the end):
        # the silent ones are a prefix, so a tick never walks the whole fleet to find them.
        self._entries: dict[str, LiveEntry] = {}
        self._entries_lock = threading.Lock()  # the tick reads a prefix while the thread updates
        self._changed: list[str] = []  # agent ids whose epoch is new here, for the next tick
        self._partition_of: dict[str, int] = {}
        self._wanted: frozenset[int] = frozenset()
        self._assigned: frozenset[int] = frozenset()
        self._heartbeat_tps: list[TopicPartition] = []  # the assigned ones, for position()
        self._eof: dict[int, int] = {}  # partition -> offset of its last end-of-partition event
        self._lag = CatchUp()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_poll = time.monotonic()
        #: The monitor time the broker last answered this reader (its statistics say so);
        #: None: not known yet.
        self.answered_at: float | None = None

    def broker_answered(self, at: float) -> None:
        """The broker last answered this reader at ``at`` (monitor clock), from its statistics."""
        self.answered_at = at

    # -- called from the event loop -------------------------------------------------------------

    def start(self) -> None:
        """Start the consumer thread (once)."""
        if self._thread is not None:
            raise LifecycleError("LivenessTracker already started")
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

    def get(self, agent_id: str) -> LiveEntry | None:
        """The newest heartbeat of ``agent_id``, if any (never mutated once returned)."""
        return self._entries.get(agent_id)

    def expired(self, seen_before: float) -> list[LiveEntry]:
        """Entries whose last heartbeat is at or before ``seen_before``, oldest first.

        The map is in ``last_seen`` order, so this walks only the silent agents: O(expired).
        """
        out: list[LiveEntry] = []
        with self._entries_lock:
            for entry in self._entries.values():
                if entry.last_seen > seen_before:
                    break
                out.append(entry)
        return out

    def drain_changed(self) -> list[str]:
        """Agent ids that appeared, changed epoch or were dropped since the last call."""
        with self._entries_lock:
            changed, self._changed = self._changed, []
        return changed

    @property
    def assigned(self) -> frozenset[int]:
        """The partitions the thread currently consumes."""
        return self._assigned

    @property
    def caught_up(self) -> frozenset[int]:
        """The consumed partitions the thread has read to their end at least once since they
        were assigned: from then on every live agent of theirs is heard within its interval."""
        return self._lag.caught_up

    def behind(self, now: float) -> float:
        """Seconds the thread trails the broker at ``now`` (monitor clock) on its most lagging
        caught-up partition: heartbeats appended since then may not have been read yet."""
        return self._lag.behind(now)

    def lag(self, now: float | None = None) -> dict[int, PartitionLag]:
        """Per consumed heartbeat partition, the records not read yet and the seconds behind
        (``None`` until known), at ``now`` (default: the monitor clock now). For metrics."""
        return self._lag.lag(time.monotonic() if now is None else now)

    # -- the thread -----------------------------------------------------------------------------

    def _clients(self) -> tuple[Consumer, Producer]:
        base: dict[str, Any] = {
            **self._kafka.as_librdkafka_dict(),
            # Rate limited: a broker outage must not flood the log with reconnect lines.
            **kafka_log_settings("liveness"),
        }
        stats: dict[str, Any] = {}
        if self._on_stats is not None:
            stats = {
                "statistics.interval.ms": int(STATS_INTERVAL * 1000),
                "stats_cb": self._on_stats,
            }
        consumer = Consumer(
            {
                **base,
                **stats,
                # Never joins: partitions are assigned by hand. librdkafka still wants an id.
                "group.id": f"af-liveness-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "latest",
                # A partition read to its end says so: the position of one without records.
                "enable.partition.eof": True,
                "fetch.wait.max.ms": self._fetch_wait_ms,
            }
        )
        producer = Producer({**base, "linger.ms": 5, "partitioner": "murmur2_random"})
        return consumer, producer

    def _run(self) -> None:
        consumer, producer = self._clients()
        try:
            self._learn_leaders(consumer)
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
                    self._measure(consumer, now)
                    producer.poll(0)
                except Exception:  # never die: a dead thread would stall every decision
                    log.exception("heartbeat consumer failed; retrying")
                    self._stopping.wait(1.0)
        finally:
            consumer.close()
            producer.flush(5.0)

    def _learn_leaders(self, consumer: Consumer) -> None:
        """Ask for the topics' metadata before any partition is assigned. librdkafka looks up the
        start offset of a partition whose leader it does not know yet only after a 500 ms retry
        timer: without this a freshly started worker took 1.1-1.4 s to read its first partitions
        to their end, 0.3 s with it (on the development broker). Best effort."""
        for topic in (self._topics.heartbeats, self._topics.fleet):
            try:
                consumer.list_topics(topic, timeout=5.0)
            except KafkaException as exc:
                log.warning("metadata of %s not known yet: %s", topic, exc)

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
            with self._entries_lock:
                for agent_id, partition in list(self._partition_of.items()):
                    if partition in removed and self._entries.pop(agent_id, None) is not None:
                        self._changed.append(agent_id)
        if added:
            consumer.incremental_assign(
                [TopicPartition(topic, p, OFFSET_END) for p in sorted(added)]
            )
        for p in added | removed:
            self._eof.pop(p, None)
        self._lag.assign(wanted)
        self._heartbeat_tps = [TopicPartition(topic, p) for p in sorted(wanted)]
        self._assigned = wanted
        log.info("heartbeat partitions: %s", sorted(wanted))

    def _measure(self, consumer: Consumer, now: float) -> None:
        """Note each consumed partition's position and fetched high watermark (see
        :mod:`streams.catchup`). ``position()`` counts only records handed over: a partition read to
        its end without any record is known from its end-of-partition event."""
        if not self._heartbeat_tps:
            return
        for tp in consumer.position(self._heartbeat_tps):
            position: int | None = tp.offset if tp.offset >= 0 else None
            eof = self._eof.get(tp.partition)
            if eof is not None and (position is None or eof > position):
                position = eof
            _, high = consumer.get_watermark_offsets(tp, cached=True)
            self._lag.observe(tp.partition, position, high if high >= 0 else None, now)

    def _handle(self, batch: list[Message], now: float, producer: Producer) -> None:
        fresh: list[LiveEntry] = []
        # Decode and validate outside the lock; the tick only waits for the short update below.
        for msg in batch:
            try:
                entry = self._read(msg, now, producer)
            except Exception as exc:  # the record's, never the batch's: go on with the next
                self._letters.internal(producer, msg, exc)
                continue
            if entry is not None:
                fresh.append(entry)
        if not fresh:
            return
        if self._on_heartbeats is not None:
            try:
                self._on_heartbeats([e.sent_at for e in fresh], time.time())
            except Exception:  # a metric, never a reason to drop heartbeats
                log.exception("counting heartbeats failed")
        entries, changed = self._entries, self._changed
        with self._entries_lock:
            for entry in fresh:
                agent_id = entry.agent_id
                current = entries.get(agent_id)
                if current is not None:
                    if entry.epoch < current.epoch or (
                        entry.epoch == current.epoch and entry.seq <= current.seq
                    ):
                        # An older incarnation still beating, or a copy of a beat already seen
                        # (a signed record replayed as is is still signed): nothing about now.
                        continue
                    if entry.epoch != current.epoch:
                        changed.append(agent_id)
                    # Re-inserted at the end, so the map stays in last_seen order.
                    del entries[agent_id]
                else:
                    changed.append(agent_id)
                entries[agent_id] = entry

    def _read(self, msg: Message, now: float, producer: Producer) -> LiveEntry | None:
        """One record of the batch: a valid heartbeat of its agent's partition as an entry
        received at ``now``; None for anything else (handled here: an end of partition, a fleet
        summary, a bad record dead-lettered)."""
        error = msg.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("heartbeat consumer: %s", error)
            elif msg.topic() != self._topics.fleet:
                partition, offset = msg.partition(), msg.offset()
                if partition is not None and offset is not None:
                    self._eof[partition] = offset  # read to here (streams.catchup)
            return None
        if msg.topic() == self._topics.fleet:
            self._on_fleet(msg, now, producer)
            return None
        try:
            entry = live_entry(self._signer.open(Heartbeat, msg))
        except CodecError as exc:
            self._letters.send(producer, msg, str(exc), exc.refusal)
            return None
        agent_id = entry.agent_id
        expected = self._partition_of.get(agent_id)
        if expected is None:
            expected = partition_for(agent_id, self._topics.agent_partitions)
            self._partition_of[agent_id] = expected
        if expected != msg.partition():
            reason = (
                f"heartbeat of {agent_id!r} in partition {msg.partition()}, its key hashes to "
                f"{expected}: produce keyed by agent id with the murmur2 partitioner"
            )
            self._letters.send(producer, msg, reason, Refusal.WRONG_PARTITION)
            return None
        entry.last_seen = now
        return entry

    def _on_fleet(self, msg: Message, now: float, producer: Producer) -> None:
        if self._directory is None:
            return
        if msg.key() == self._own_key:
            # Our own summary read back: the directory ignores it, so do not pay for decoding it
            # (it lists every healthy agent this worker owns, twice a second).
            return
        try:
            summary = self._signer.open(FleetSummary, msg)
        except CodecError as exc:
            self._letters.send(producer, msg, str(exc), exc.refusal)
            return
        self._directory.receive(summary, now)
