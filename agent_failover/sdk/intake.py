"""Task intake: what reaches this agent, in which order it starts, and the two threads doing it.

An agent takes work only from the monitor: every task, new or moved, arrives as a ``redispatch``
on the agent's own partition of ``tasks.priority`` (docs/protocol.md, "An agent's life"). The
*listener* thread reads that partition and the agent's partition of ``control`` (assigned, no
group, from their end at start-up) and hands filtered records to the core's control handler
(:mod:`agent_failover.sdk.control`), which queues accepted dispatches in a :class:`WorkQueue`.
The *starter* thread starts queued work while slots are free: failover work (attempt >= 2)
before new work (attempt 1), each in arrival order.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Protocol, TypeVar

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from agent_failover.errors import CodecError
from agent_failover.logs import rate_limited, similar
from agent_failover.models import Control, ControlKind, Record, Redispatch
from agent_failover.sdk.deadletters import AgentDeadLetters, where
from agent_failover.sdk.heartbeat import BackgroundLoop
from agent_failover.sdk.kafka import broker_error
from agent_failover.sdk.lease import Lease
from agent_failover.signing import Signer

if TYPE_CHECKING:  # the transports build on this module
    from agent_failover.sdk.transport import RecordSource

log = logging.getLogger(__name__)
#: Records refused (not decodable, or not signed by the fleet): a stream of them is rate limited.
refused = rate_limited(f"{__name__}.refused")

_R = TypeVar("_R", bound=Record)

# --- pure decisions ---------------------------------------------------------------------------


class RedispatchFilter:
    """Accepts a redispatch addressed to this epoch, once per ``(task_id, attempt)``.

    A monitor restart mid-apply writes identical copies; only the first one counts. Remembers at
    most ``max_seen`` pairs (oldest forgotten first) so a long-lived agent stays bounded.
    """

    def __init__(self, agent_id: str, epoch: int, max_seen: int = 100_000) -> None:
        self._agent_id = agent_id
        self._epoch = epoch
        self._max_seen = max_seen
        self._seen: collections.OrderedDict[tuple[str, int], None] = collections.OrderedDict()

    def accept(self, record: Redispatch) -> bool:
        """True the first time a redispatch for this agent id and epoch is seen."""
        if record.target_agent_id != self._agent_id or record.target_epoch != self._epoch:
            return False
        key = (record.task_id, record.attempt)
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > self._max_seen:
            self._seen.popitem(last=False)
        return True


@dataclasses.dataclass(frozen=True, slots=True)
class ControlActions:
    """What a control record asks of this agent."""

    fence: bool = False
    #: ``(task_id, new_attempt)`` of tasks this agent holds that a plan moved to a newer attempt.
    moved: tuple[tuple[str, int], ...] = ()
    drain: bool = False
    promote: bool = False


def interpret_control(
    record: Control, agent_id: str, epoch: int, held: Mapping[str, int]
) -> ControlActions:
    """Decide what ``record`` means for the epoch ``(agent_id, epoch)`` holding ``held``.

    ``held`` maps the task ids this agent holds to their attempt. ``fence``, ``drain`` and
    ``promote`` concern only this epoch; a plan entry (of a fence or a dispatch) that gives a held
    task a higher attempt moves it away, whichever epoch the record names, since that attempt
    supersedes ours.
    """
    if record.agent_id != agent_id:
        return ControlActions()
    ours = record.epoch == epoch
    moved = tuple(
        (entry.task_id, entry.attempt)
        for entry in record.plan
        if entry.task_id in held and entry.attempt > held[entry.task_id]
    )
    return ControlActions(
        fence=ours and record.kind is ControlKind.FENCE,
        moved=moved,
        drain=ours and record.kind is ControlKind.DRAIN,
        promote=ours and record.kind is ControlKind.PROMOTE,
    )


# --- the listener thread ----------------------------------------------------------------------


def assign_at_end(
    consumer: Consumer, partitions: list[TopicPartition], timeout: float
) -> list[TopicPartition]:
    """Assign ``partitions`` at their current end offsets, resolved now (not lazily); returns
    them with those offsets.

    Resolving before the agent announces itself means a redispatch written after
    ``agent_started`` is never skipped. (On Tansu the reported end can lie a little before the
    true end; re-reading those few records is harmless, they are for older epochs.)
    """
    positioned = []
    for tp in partitions:
        try:
            _low, high = consumer.get_watermark_offsets(tp, timeout=timeout, cached=False)
        except KafkaException as exc:
            raise broker_error(f"cannot find the end of {tp.topic}[{tp.partition}]", exc) from exc
        positioned.append(TopicPartition(tp.topic, tp.partition, high))
    consumer.assign(positioned)
    return positioned


class Listener(BackgroundLoop):
    """Reads control and priority records for this agent and passes them on, decoded.

    Only records signed by the fleet (``signer``) are passed on: a forged fence or re-dispatch is
    skipped with a (rate-limited) warning. No record stops the thread: one that does not decode,
    keyed by this agent (``agent_id``: it was addressed here), and one whose handling raises
    (``internal: <type>``, whoever it was for) are set aside by ``dead_letters``; a bad record
    keyed by another agent of the partition is only skipped (the monitor sets it aside, and so
    does its agent). Only a consumer that fails (``on_failure``) stops the agent.

    ``control`` is the agent's control partition with the offset it was assigned at. When the
    ``lease`` asks for it (renewed after it ran out), the listener reads that partition to an end
    fetched after the renewal and then tells the lease: a fence written while the agent could not
    read is handled before work resumes.
    """

    def __init__(
        self,
        consumer: RecordSource,
        *,
        control: TopicPartition,
        priority_topic: str,
        lease: Lease,
        on_control: Callable[[Control], None],
        on_redispatch: Callable[[Redispatch], None],
        on_failure: Callable[[BaseException], None],
        signer: Signer,
        dead_letters: AgentDeadLetters,
        agent_id: str,
        name: str,
    ) -> None:
        self._consumer = consumer
        self._signer = signer
        self._dead_letters = dead_letters
        self._own_key = agent_id.encode()
        self._control = TopicPartition(control.topic, control.partition)
        self._control_topic = control.topic
        self._control_next = control.offset  # the next control offset to handle
        self._priority_topic = priority_topic
        self._lease = lease
        self._sync: _Sync | None = None
        self._on_control = on_control
        self._on_redispatch = on_redispatch
        self._on_failure = on_failure
        # The consumer is assigned before start(); the caller closes it after stop().
        super().__init__(f"{name}-listener")

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                for msg in self._consumer.consume(num_messages=100, timeout=0.1):
                    self._handle(msg)
                self._sync_control()
        except Exception as exc:  # a dead listener would miss fences: stop the agent instead
            self._on_failure(exc)

    def _sync_control(self) -> None:
        """Move a requested read of the control partition to its end along (see the class).

        The end is asked of the broker (ListOffsets) after the renewal. Some brokers answer it
        short, with the base offset of the partition's last batch plus one (docs/tansu.md,
        quirk a); reading past that offset means the last batch was fetched, so the high
        watermark its fetch response brought is the true end: the read goes on to that too.
        """
        if self._sync is None:
            if not self._lease.needs_sync():
                return
            started = self._lease.clock()
            try:
                _low, end = self._consumer.get_watermark_offsets(
                    self._control, timeout=1.0, cached=False
                )
            except KafkaException as exc:
                log.debug("listener: the end of %s is unknown yet: %s", self._control_topic, exc)
                return  # asked again on the next round
            self._sync = _Sync(started, end)
        sync = self._sync
        if self._control_next < sync.end:
            return
        if sync.fetched_end is None:
            _low, high = self._consumer.get_watermark_offsets(self._control, cached=True)
            if high < 0:
                return  # no fetch response yet
            sync.fetched_end = high
        if self._control_next < sync.fetched_end:
            return
        self._sync = None
        self._lease.synced(sync.started)

    def _handle(self, msg: Message) -> None:
        if msg.error():
            refused.warning("listener: %s", msg.error())
            return
        if msg.topic() == self._control_topic and msg.offset() is not None:
            # Every control record counts towards the read to the end, set aside or not.
            self._control_next = max(self._control_next, (msg.offset() or 0) + 1)
        self._dead_letters.contain(msg, lambda: self._use(msg))

    def _use(self, msg: Message) -> None:
        """Decode one record and hand it on."""
        topic = msg.topic()
        if topic == self._control_topic:
            control = self._open(Control, msg)
            if control is not None:
                self._on_control(control)
        elif topic == self._priority_topic:
            redispatch = self._open(Redispatch, msg)
            if redispatch is not None:
                self._on_redispatch(redispatch)

    def _open(self, cls: type[_R], msg: Message) -> _R | None:
        """``msg`` checked and decoded; None if it cannot be used: set aside if it was addressed
        here, else skipped with a (rate-limited) warning."""
        try:
            return self._signer.open(cls, msg)
        except CodecError as exc:
            if msg.key() == self._own_key:
                self._dead_letters.send(msg, str(exc), exc.refusal)
            else:
                refused.warning(
                    "skipping %s: %s", where(msg), exc, extra=similar(f"skipped {msg.topic()}")
                )
            return None


@dataclasses.dataclass(slots=True)
class _Sync:
    """A read of the control partition to its end, under way: asked for at ``started`` (the
    lease's clock), to ``end`` (ListOffsets), then to ``fetched_end`` (a fetch's high watermark)."""

    started: float
    end: int
    fetched_end: int | None = None


# --- the queue and the starter thread ------------------------------------------------------


class WorkQueue:
    """Accepted dispatches not started yet: failover work first, then new work, each in arrival
    order. Not thread-safe: the core guards it with its lock.

    Failover work (attempt >= 2) first because it is late already: its agent died or let it go,
    and it may resume from a checkpoint. The monitor places new work only on free slots, so new
    work queues here only when two monitor workers chose this agent within one fleet summary.
    """

    def __init__(self) -> None:
        self._moved: collections.deque[Redispatch] = collections.deque()
        self._new: collections.deque[Redispatch] = collections.deque()

    def _lane(self, record: Redispatch) -> collections.deque[Redispatch]:
        return self._new if record.attempt == 1 else self._moved

    def push(self, record: Redispatch) -> None:
        """Queue ``record`` behind the others of its kind."""
        self._lane(record).append(record)

    def push_front(self, record: Redispatch) -> None:
        """Put back a record taken by :meth:`pop` (it could not start after all)."""
        self._lane(record).appendleft(record)

    def pop(self) -> Redispatch | None:
        """The next record to start, or None."""
        lane = self._moved or self._new
        return lane.popleft() if lane else None

    def drop(self, task_id: str, below: int) -> None:
        """Forget queued attempts of ``task_id`` older than ``below`` (moved elsewhere)."""
        for lane in (self._moved, self._new):
            kept = [r for r in lane if not (r.task_id == task_id and r.attempt < below)]
            if len(kept) != len(lane):
                lane.clear()
                lane.extend(kept)

    def take_all(self) -> list[Redispatch]:
        """Every queued record, in start order; the queue is left empty."""
        out = [*self._moved, *self._new]
        self._moved.clear()
        self._new.clear()
        return out

    def __iter__(self) -> Iterator[Redispatch]:
        yield from self._moved
        yield from self._new

    def __len__(self) -> int:
        return len(self._moved) + len(self._new)


class StartHost(Protocol):
    """What the starter thread needs from the agent core (its
    :class:`~agent_failover.sdk.tasks.TaskRunner`)."""

    def next_start_locked(self) -> Redispatch | None:
        """The next queued record that may start now, its slot held; None if none may.

        Called with the core's lock held (the starter's condition is built on it)."""
        ...

    def start_task(self, record: Redispatch) -> None:
        """Start ``record``: read its checkpoint, announce ``claimed``, launch the handler."""
        ...

    def fail(self, exc: BaseException) -> None:
        """The thread died: stop the agent."""
        ...


class Starter(BackgroundLoop):
    """Starts queued work while slots are free; sleeps on ``ready`` until told something changed.

    ``ready`` is a condition on the core's lock, notified when a dispatch is queued, a slot frees
    or the pool changes; starting a task (a checkpoint read, then the launch) happens outside it.
    """

    def __init__(self, host: StartHost, ready: threading.Condition, *, name: str) -> None:
        super().__init__(f"{name}-starter")
        self._host = host
        self._ready = ready

    def stop(self) -> None:
        """Stop starting work; returns once the thread has ended."""
        self._stop.set()
        with self._ready:
            self._ready.notify_all()
        super().stop()

    def _loop(self) -> None:
        try:
            while True:
                with self._ready:
                    record = self._host.next_start_locked()
                    while record is None:
                        if self._stop.is_set():
                            return
                        self._ready.wait()
                        record = self._host.next_start_locked()
                self._host.start_task(record)
        except Exception as exc:  # a dead starter would leave work queued: stop the agent
            self._host.fail(exc)
