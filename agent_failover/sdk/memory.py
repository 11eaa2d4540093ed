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
configuration has a key); only the clients differ: they read and write the in-memory log of
:mod:`agent_failover.sdk.memlog`.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from confluent_kafka import TopicPartition

from agent_failover.config import AgentConfig, KafkaConfig, Topics
from agent_failover.errors import CodecError, ConfigError, LifecycleError
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
from agent_failover.sdk.deadletters import AgentDeadLetters
from agent_failover.sdk.kafka import Delivered
from agent_failover.sdk.memlog import MemoryCheckpoints, MemoryListener, MemoryLog, MemoryWriter
from agent_failover.sdk.outcomes import OutcomeFuture, Submission
from agent_failover.sdk.transport import AgentClients

#: The agent and epoch a resumed task's earlier attempt ran on (nobody runs as them).
EARLIER_AGENT = "earlier-agent"
EARLIER_EPOCH = 0


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
        self._stored = MemoryLog(self.topics)
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
        writer = MemoryWriter(self._stored, signer, self._written)
        dead_letters = AgentDeadLetters(writer.send, self.topics.dead_letter, config.agent_id)
        control = TopicPartition(self.topics.control, own)
        listener = MemoryListener(self._stored, [(control.topic, own), (self.topics.priority, own)])
        control.offset = listener.position(control.topic, own)
        return AgentClients(
            writer,
            listener,
            MemoryCheckpoints(self._stored, self.topics.checkpoints, signer, dead_letters),
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
