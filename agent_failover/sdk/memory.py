"""An in-memory transport: a whole :class:`~agent_failover.sdk.Agent` in a test, without a broker.

:class:`MemoryTransport` keeps every topic as lists in this process and stands in for the
monitor where a test needs it: :meth:`~MemoryTransport.dispatch` sends a task to a running agent
(new work, or a failover resuming after a given step) and returns a
:class:`~agent_failover.sdk.Submission` that resolves when the agent reports the task's end;
:meth:`~MemoryTransport.fence` declares an agent dead. It makes no decision of its own: a
fenced or stopped agent's tasks stay where they were until the test dispatches them again.
:meth:`~MemoryTransport.outage` takes the broker away for a while.

Everything the agent does goes through the same code as on Kafka (the listener, the queue,
checkpoints and their confirmation, the checkpoint read on resume, signatures when the
configuration has a key); only the clients differ.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from agent_failover.config import AgentConfig, KafkaConfig, Topics
from agent_failover.errors import BrokerError, CodecError, ConfigError, LifecycleError
from agent_failover.models import (
    JSON,
    Checkpoint,
    CheckpointRef,
    Control,
    ControlKind,
    DispatchReason,
    EventKind,
    Redispatch,
    SourceRef,
    Task,
    TaskEvent,
    TaskOutcome,
)
from agent_failover.partitioner import partition_for
from agent_failover.sdk.checkpoint import CheckpointReader
from agent_failover.sdk.deadletters import AgentDeadLetters
from agent_failover.sdk.kafka import Delivered, DeliveryFuture
from agent_failover.sdk.outcomes import OutcomeFuture, Submission
from agent_failover.sdk.transport import AgentClients
from agent_failover.signing import Signer
from agent_failover.topics import topic_specs

#: The agent and epoch a resumed task's earlier attempt ran on (nobody runs as them).
EARLIER_AGENT = "earlier-agent"
EARLIER_EPOCH = 0


@dataclasses.dataclass(frozen=True, slots=True)
class _Stored:
    key: bytes | None
    value: bytes
    headers: list[tuple[str, str | bytes | None]] | None


class _Topics:
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
        with self.changed:
            return len(self._logs.get((topic, partition), ()))

    def read(self, topic: str, partition: int, offset: int, most: int) -> list[Message]:
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


class _Writer:
    """An agent's writer: each record is stored (and its future resolved) at once, or when an
    outage ends."""

    def __init__(
        self, topics: _Topics, signer: Signer, written: Callable[[str, bytes], None]
    ) -> None:
        self._topics = topics
        self._signer = signer
        self._written = written
        self._closed = False

    def send(self, topic: str, key: str | bytes, value: bytes) -> DeliveryFuture:
        if self._closed:
            raise LifecycleError("producer is not running")
        future: DeliveryFuture = concurrent.futures.Future()
        raw = key.encode() if isinstance(key, str) else key
        self._topics.hold_or_append(
            topic, raw, value, self._signer, future, lambda: self._written(topic, value)
        )
        return future

    def close(self, timeout: float) -> None:
        self._closed = True


class _Listener:
    """An agent's reader of its own partitions of ``control`` and ``tasks.priority``, from their
    end when it was made."""

    def __init__(self, topics: _Topics, partitions: list[tuple[str, int]]) -> None:
        self._topics = topics
        self._positions = {tp: topics.end(*tp) for tp in partitions}
        self._closed = False

    def position(self, topic: str, partition: int) -> int:
        """The next offset it reads of a partition."""
        with self._topics.changed:
            return self._positions[(topic, partition)]

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
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
        if self._topics.down:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "in-memory outage"))
        return 0, self._topics.end(partition.topic, partition.partition)

    def close(self) -> None:
        self._closed = True
        with self._topics.changed:
            self._topics.changed.notify_all()


class _Checkpoints(CheckpointReader):
    """Reads checkpoints from memory; the checks on what it finds are the Kafka reader's."""

    def __init__(
        self, topics: _Topics, topic: str, signer: Signer, dead_letters: AgentDeadLetters
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


class MemoryTransport:
    """The fleet's topics in memory, and the monitor's part a test needs.

    ::

        transport = MemoryTransport()
        with Agent(transport.config(), summarise, transport=transport):
            submission = transport.dispatch(Task(task_id="t1", task_type="summarise"))
            assert submission.result(timeout=5) == {"notes": 10}
        assert [c.step for c in transport.checkpoints("t1")] == list(range(10))

    Agents on one transport must use its :attr:`topics` and key (:meth:`config` gives both).
    Thread-safe.
    """

    def __init__(self, topics: Topics | None = None, *, signing_key: str | None = None) -> None:
        #: The topic set (names and partition counts) of every agent on this transport.
        self.topics = topics or Topics()
        #: The settings :meth:`config` gives agents: no broker is ever contacted.
        self.kafka = KafkaConfig("in-memory.invalid:9092", signing_key=signing_key)
        self._stored = _Topics(self.topics)
        self._lock = threading.Lock()
        self._running: dict[str, int] = {}  # agent id -> its running epoch
        self._fenced: set[tuple[str, int]] = set()
        # (task id, attempt) -> the epoch it was sent to, and the future of its outcome
        self._waiting: dict[tuple[str, int], tuple[int, OutcomeFuture]] = {}
        self._offsets = itertools.count()

    def config(self, agent_id: str = "agent-1", **settings: Any) -> AgentConfig:
        """An :class:`AgentConfig` for this transport (``settings``: other fields of it)."""
        return AgentConfig(kafka=self.kafka, topics=self.topics, agent_id=agent_id, **settings)

    # --- the transport --------------------------------------------------------------------

    def connect(
        self,
        config: AgentConfig,
        name: str,
        *,
        on_fatal: Callable[[BaseException], None] | None = None,
    ) -> AgentClients:
        """An agent's clients on these topics
        (:class:`~agent_failover.sdk.transport.Transport`).

        Raises :class:`ConfigError` if the agent's topics are not this transport's.
        """
        if config.topics != self.topics:
            raise ConfigError(
                f"agent {config.agent_id} has topics {config.topics}, the transport "
                f"{self.topics}: build its configuration with MemoryTransport.config()"
            )
        own = partition_for(config.agent_id, self.topics.agent_partitions)
        signer = config.kafka.signer
        writer = _Writer(self._stored, signer, self._written)
        dead_letters = AgentDeadLetters(writer.send, self.topics.dead_letter, config.agent_id)
        control = TopicPartition(self.topics.control, own)
        listener = _Listener(self._stored, [(control.topic, own), (self.topics.priority, own)])
        control.offset = listener.position(control.topic, own)
        return AgentClients(
            writer,
            listener,
            _Checkpoints(self._stored, self.topics.checkpoints, signer, dead_letters),
            control,
        )

    def _written(self, topic: str, value: bytes) -> None:
        """Follow the agents' lives, and resolve the outcome of each task that ends."""
        ev = _decoded(TaskEvent, value) if topic == self.topics.task_events else None
        if ev is None:
            return
        with self._lock:
            if ev.kind is EventKind.AGENT_STARTED:
                self._running[ev.agent_id] = ev.epoch
            elif ev.kind is EventKind.AGENT_STOPPED and self._running.get(ev.agent_id) == ev.epoch:
                del self._running[ev.agent_id]
            if ev.kind not in (EventKind.COMPLETED, EventKind.FAILED):
                return
            assert ev.task_id is not None and ev.attempt is not None
            epoch, future = self._waiting.get((ev.task_id, ev.attempt), (None, None))
            if future is None or epoch != ev.epoch or (ev.agent_id, ev.epoch) in self._fenced:
                return  # as the monitor: not the dispatched epoch's, or a fenced one's
            del self._waiting[(ev.task_id, ev.attempt)]
        future.set_result(TaskOutcome.of_event(ev))

    # --- the monitor's part ---------------------------------------------------------------

    def dispatch(
        self,
        task: Task,
        *,
        agent_id: str | None = None,
        resume: tuple[int, JSON] | None = None,
    ) -> Submission:
        """Send ``task`` to a running agent (``agent_id``, or the only one running) as the
        monitor would; the submission resolves when that agent reports its end.

        ``resume=(step, state)``: send it as a failover instead (attempt 2), naming a
        checkpoint of ``step`` with ``state`` that an earlier attempt wrote, so the handler
        resumes after ``step``. Raises :class:`LifecycleError` if no such agent runs.
        """
        agent_id, epoch = self._target(agent_id)
        now = time.time()
        fields: dict[str, Any] = {
            "task": task,
            "target_agent_id": agent_id,
            "target_epoch": epoch,
            "decision_id": uuid.uuid4().hex,
            "dispatched_at": now,
        }
        partition = partition_for(task.task_id, self.topics.task_partitions)
        offset = next(self._offsets)
        if resume is None:
            source = SourceRef(partition=partition, offset=offset)
            record = Redispatch(attempt=1, reason=DispatchReason.NEW, source=source, **fields)
        else:
            record = Redispatch(
                attempt=2,
                reason=DispatchReason.HEARTBEAT_TIMEOUT,
                from_agent_id=EARLIER_AGENT,
                from_epoch=EARLIER_EPOCH,
                checkpoint=self._earlier_checkpoint(task.task_id, *resume),
                **fields,
            )
        future = OutcomeFuture()
        future.set_running_or_notify_cancel()
        with self._lock:
            self._waiting[(task.task_id, record.attempt)] = (epoch, future)
        self._write(self.topics.priority, agent_id, record.encode())
        return Submission(task.task_id, partition, offset, future)

    def _earlier_checkpoint(self, task_id: str, step: int, state: JSON) -> CheckpointRef:
        checkpoint = Checkpoint(
            task_id=task_id,
            attempt=1,
            agent_id=EARLIER_AGENT,
            epoch=EARLIER_EPOCH,
            step=step,
            state=state,
            written_at=time.time(),
        )
        where = self._write(self.topics.checkpoints, task_id, checkpoint.encode())
        return CheckpointRef(
            partition=where.partition,
            offset=where.offset,
            step=step,
            task_id=task_id,
            attempt=1,
            epoch=EARLIER_EPOCH,
        )

    def fence(self, agent_id: str) -> None:
        """Declare ``agent_id``'s running epoch dead, as the monitor's fence does: it stops its
        tasks and writes nothing more. Its tasks are not moved (dispatch them again)."""
        agent_id, epoch = self._target(agent_id)
        with self._lock:
            self._fenced.add((agent_id, epoch))
            self._running.pop(agent_id, None)
        fence = Control(
            kind=ControlKind.FENCE,
            agent_id=agent_id,
            epoch=epoch,
            decision_id=uuid.uuid4().hex,
            issued_at=time.time(),
            reason=DispatchReason.HEARTBEAT_TIMEOUT,
        )
        self._write(self.topics.control, agent_id, fence.encode())

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """The broker is gone inside the block: writes are held unanswered (as librdkafka holds
        them while it reconnects) and agents read nothing; at its end the held writes are
        stored in order. Agents pause: heartbeats are not acknowledged, so their leases run out
        and guarded steps wait until a heartbeat is acknowledged again."""
        self._stored.set_down(True)
        try:
            yield
        finally:
            self._stored.set_down(False)

    def _target(self, agent_id: str | None) -> tuple[str, int]:
        with self._lock:
            running = dict(self._running)
        if agent_id is None and len(running) == 1:
            return next(iter(running.items()))
        if agent_id is not None and agent_id in running:
            return agent_id, running[agent_id]
        wanted = "no agent" if agent_id is None else f"agent {agent_id!r} is not"
        raise LifecycleError(
            f"{wanted} running on this transport (running: {sorted(running) or 'none'}); "
            "name one when several run"
        )

    def _write(self, topic: str, key: str, value: bytes) -> Delivered:
        return self._stored.append(topic, key.encode(), value, self.kafka.signer)

    # --- what was written -----------------------------------------------------------------

    def events(self, task_id: str | None = None) -> list[TaskEvent]:
        """The task events written (of ``task_id``, or all), partition by partition."""
        events = [_decoded(TaskEvent, v) for v in self._stored.values(self.topics.task_events)]
        return [e for e in events if e is not None and task_id in (None, e.task_id)]

    def checkpoints(self, task_id: str | None = None) -> list[Checkpoint]:
        """The checkpoints written (of ``task_id``, or all), partition by partition."""
        found = [_decoded(Checkpoint, v) for v in self._stored.values(self.topics.checkpoints)]
        return [c for c in found if c is not None and task_id in (None, c.task_id)]


def _decoded(cls: type[Any], value: bytes) -> Any:
    try:
        return cls.decode(value)
    except CodecError:
        return None
