"""Reading topics back: every partition from the beginning, to the high watermark, or live.

:class:`TopicReader` is an assigned consumer (no group: it commits nothing and never rebalances)
over every partition of some topics. :func:`read_topic` reads them once to their end;
:class:`TopicTail` keeps reading in a background thread and can be brought up to date on demand.

"To the end" means to each partition's high watermark as a fetch response reports it, not as
ListOffsets(LATEST) does: the development broker answers ListOffsets(LATEST) short (the last
batch's base offset + 1, docs/tansu.md quirk a), so a reader that stops at
``get_watermark_offsets(cached=False)`` can miss the last batch. A fetch response carries the
true high watermark, and librdkafka turns it into a partition-EOF event (``enable.partition.eof``)
once the position reaches it; a reader is at the end when every partition has sent that event
after a fetch issued since the read began.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Callable, Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from agent_failover.config import KafkaConfig
from agent_failover.errors import BrokerError
from agent_failover.signing import Headers

#: Short: the development broker does not wake a waiting fetch when data arrives (docs/tansu.md).
FETCH_WAIT_MS = 10

Partition = tuple[str, int]


@dataclasses.dataclass(frozen=True)
class Rec:
    """A record read back: where it lies, its Kafka timestamp (ms), when this process saw it,
    and its headers (a signed record's signature)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    seen: float
    headers: Headers | None = None


class TopicReader:
    """Every partition of ``topics`` from the beginning, read by one assigned consumer.

    Not thread-safe: use it from one thread (:class:`TopicTail` runs one in its own thread).
    ``isolation`` is the consumer's ``isolation.level``; with ``read_committed`` the end is the
    last stable offset. Raises :class:`BrokerError` if a topic does not exist or the broker does
    not answer within ``timeout`` seconds.
    """

    def __init__(
        self,
        kafka: KafkaConfig | str,
        topics: str | Sequence[str],
        *,
        isolation: str = "read_uncommitted",
        timeout: float = 30.0,
    ) -> None:
        self.kafka = KafkaConfig.coerce(kafka)
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        self._consumer = Consumer(
            {
                **self.kafka.as_librdkafka_dict(),
                "group.id": f"af-reader-{uuid.uuid4().hex[:8]}",  # never joined: assign() only
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "fetch.wait.max.ms": FETCH_WAIT_MS,
                "isolation.level": isolation,
            }
        )
        #: The next offset to read per partition (OFFSET_BEGINNING until a record or EOF).
        self.positions: dict[Partition, int] = {}
        try:
            for topic in self.topics:
                for partition in self._partitions(topic, timeout):
                    self.positions[(topic, partition)] = OFFSET_BEGINNING
        except BaseException:
            self._consumer.close()
            raise
        self._assign()

    def _partitions(self, topic: str, timeout: float) -> list[int]:
        try:
            meta = self._consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        except KafkaException as exc:
            raise BrokerError(f"cannot read the metadata of topic {topic}: {exc}") from exc
        if meta is None or meta.error is not None or not meta.partitions:
            reason = meta.error if meta is not None and meta.error is not None else "no partitions"
            raise BrokerError(f"cannot read topic {topic}: {reason}", retryable=False)
        return sorted(meta.partitions)

    def _assign(self) -> None:
        # A new assignment restarts every partition's fetcher at our own positions, so the next
        # partition-EOF of each comes from a fetch issued after this call.
        self._consumer.assign([TopicPartition(t, p, o) for (t, p), o in self.positions.items()])

    def _consume(self, timeout: float, at_end: set[Partition] | None = None) -> list[Rec]:
        now = time.time()
        out = []
        for msg in self._consumer.consume(1000, timeout):
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            if topic is None or partition is None or offset is None:
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    self.positions[(topic, partition)] = offset
                    if at_end is not None:
                        at_end.add((topic, partition))
                # Other consumer errors are librdkafka's notices (a connection dropped, ...): it
                # retries on its own, and a read that cannot finish ends in a TimeoutError.
                continue
            self.positions[(topic, partition)] = offset + 1
            _, timestamp_ms = msg.timestamp()
            key, value, headers = msg.key(), msg.value(), msg.headers()
            out.append(Rec(topic, partition, offset, key, value, timestamp_ms, now, headers))
        return out

    def poll(self, timeout: float = 0.05) -> list[Rec]:
        """The records that arrived since the last call (waits at most ``timeout`` seconds)."""
        return self._consume(timeout)

    def read_to_end(self, timeout: float = 30.0) -> list[Rec]:
        """Every record not read yet, up to each partition's high watermark at the time it is read.

        Records written (and acknowledged) before this call are all included. Raises
        :class:`TimeoutError` naming the partitions that did not reach their end in time.
        """
        self._assign()
        at_end: set[Partition] = set()
        out: list[Rec] = []
        deadline = time.monotonic() + timeout
        while len(at_end) < len(self.positions):
            if time.monotonic() > deadline:
                behind = sorted(set(self.positions) - at_end)
                raise TimeoutError(
                    f"could not read {', '.join(self.topics)} to the high watermark within "
                    f"{timeout:g} s (not at the end: {behind})"
                )
            out += self._consume(0.1, at_end)
        return out

    def close(self) -> None:
        """Close the consumer (it never joined a group, so this is quick)."""
        self._consumer.close()

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_topic(
    kafka: KafkaConfig | str,
    topics: str | Sequence[str],
    *,
    isolation: str = "read_uncommitted",
    timeout: float = 30.0,
) -> list[Rec]:
    """Every record of ``topics`` from the beginning to the high watermark (see the module doc)."""
    with TopicReader(kafka, topics, isolation=isolation, timeout=timeout) as reader:
        return reader.read_to_end(timeout)


@dataclasses.dataclass
class _Sync:
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    error: BaseException | None = None


class TopicTail:
    """A :class:`TopicReader` in a background thread: records as they arrive, thread-safe.

    ``on_records`` is called in that thread with each new batch. With ``keep=False`` records are
    only handed to it, not kept for :meth:`snapshot`. :meth:`sync` waits until everything written
    before the call has been read.
    """

    def __init__(
        self,
        kafka: KafkaConfig | str,
        topics: Sequence[str],
        *,
        on_records: Callable[[list[Rec]], None] | None = None,
        keep: bool = True,
        name: str = "tail",
    ) -> None:
        self.kafka = KafkaConfig.coerce(kafka)
        self.topics = list(topics)
        self.on_records = on_records
        self.keep = keep
        self.records: list[Rec] = []
        #: What stopped the thread, if anything did.
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._syncs: list[_Sync] = []
        self._sync_timeout = 30.0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self, timeout: float = 30.0) -> TopicTail:
        """Start reading; returns once every partition is assigned (raises what went wrong)."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"tail of {self.topics} not assigned within {timeout:g} s")
        if self.error is not None:
            raise self.error
        return self

    def stop(self) -> None:
        """Stop the thread and close its consumer."""
        self._stop.set()
        self._thread.join(10)

    def __enter__(self) -> TopicTail:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def sync(self, timeout: float = 30.0) -> None:
        """Return once every record written before this call has been read (and handed on)."""
        request = _Sync()
        with self._lock:
            if self.error is not None or not self._thread.is_alive():
                raise RuntimeError(f"tail of {self.topics} is not running: {self.error}")
            self._sync_timeout = timeout
            self._syncs.append(request)
        # The thread's own read has the same deadline; a little more here for its last batch.
        if not request.done.wait(timeout + 5.0):
            raise TimeoutError(f"tail of {self.topics} did not catch up within {timeout:g} s")
        if request.error is not None:
            raise request.error

    def snapshot(self, topic: str | None = None) -> list[Rec]:
        """The records read so far (of one topic, or all), in the order read."""
        with self._lock:
            recs = list(self.records)
        return recs if topic is None else [r for r in recs if r.topic == topic]

    def _run(self) -> None:
        try:
            reader = TopicReader(self.kafka, self.topics)
        except BaseException as exc:
            self.error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                with self._lock:
                    syncs, self._syncs = self._syncs, []
                if not syncs:
                    self._deliver(reader.poll(0.05))
                    continue
                failure: BaseException | None = None
                try:
                    self._deliver(reader.read_to_end(self._sync_timeout))
                except TimeoutError as exc:  # the callers' failure, not the tail's
                    failure = exc
                except BaseException as exc:
                    failure = exc
                    raise
                finally:
                    for request in syncs:
                        request.error = failure
                        request.done.set()
        except BaseException as exc:
            self.error = exc
        finally:
            reader.close()
            with self._lock:
                syncs, self._syncs = self._syncs, []
            for request in syncs:
                request.error = RuntimeError(f"tail of {self.topics} stopped: {self.error}")
                request.done.set()

    def _deliver(self, recs: list[Rec]) -> None:
        if not recs:
            return
        if self.keep:
            with self._lock:
                self.records.extend(recs)
        if self.on_records is not None:
            self.on_records(recs)
