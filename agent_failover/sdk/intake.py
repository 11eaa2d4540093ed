"""Task intake: the control/priority listener, the normal-topic group consumer, and their filters.

Two threads. The *listener* reads this agent's own partition of ``control`` and ``tasks.priority``
(assigned, no group, from their end at start-up) and hands filtered records to the core. The
*intake* thread starts work: queued re-dispatches first, then records of the normal ``tasks``
topic, as a member of the agents' consumer group, only while a slot is free.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from agent_failover.errors import BrokerError, CodecError
from agent_failover.logs import rate_limited
from agent_failover.models import Control, ControlKind, Redispatch, SourceRef, Task
from agent_failover.sdk.heartbeat import BackgroundLoop
from agent_failover.sdk.kafka import broker_error
from agent_failover.signing import Signer

log = logging.getLogger(__name__)
#: Records refused (not decodable, or not signed by the fleet): a stream of them is rate limited.
refused = rate_limited(f"{__name__}.refused")

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


def assign_at_end(consumer: Consumer, partitions: list[TopicPartition], timeout: float) -> None:
    """Assign ``partitions`` at their current end offsets, resolved now (not lazily).

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


class Listener(BackgroundLoop):
    """Reads control and priority records for this agent and passes them on, decoded.

    Only records signed by the fleet (``signer``) are passed on: a forged fence or re-dispatch is
    skipped with a (rate-limited) warning.
    """

    def __init__(
        self,
        consumer: Consumer,
        *,
        control_topic: str,
        priority_topic: str,
        on_control: Callable[[Control], None],
        on_redispatch: Callable[[Redispatch], None],
        on_failure: Callable[[BaseException], None],
        signer: Signer,
        name: str,
    ) -> None:
        self._consumer = consumer
        self._signer = signer
        self._control_topic = control_topic
        self._priority_topic = priority_topic
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
        except Exception as exc:  # a dead listener would miss fences: stop the agent instead
            self._on_failure(exc)

    def _handle(self, msg: Message) -> None:
        if msg.error():
            log.warning("listener: %s", msg.error())
            return
        topic = msg.topic()
        try:
            if topic == self._control_topic:
                self._on_control(self._signer.open(Control, msg))
            elif topic == self._priority_topic:
                self._on_redispatch(self._signer.open(Redispatch, msg))
        except CodecError as exc:
            # The monitor dead-letters bad records it sees; an agent only skips them.
            refused.warning("skipping %s[%s]@%s: %s", topic, msg.partition(), msg.offset(), exc)


# --- the intake thread ------------------------------------------------------------------------


class Claim(enum.Enum):
    """The outcome of trying to take one normal task record."""

    TAKEN = "taken"
    RETRY = "retry"  # not taken: read the record again if the partition is still ours
    SKIPPED = "skipped"  # not a task (bad record): committed past it


class IntakeHost(Protocol):
    """What the intake thread needs from the agent core."""

    def take_priority(self) -> None:
        """Start queued re-dispatched tasks while slots are free (called from this thread)."""
        ...

    def wants_group(self) -> bool:
        """True while this agent should be a member of the task group (active pool)."""
        ...

    def free_for_normal(self) -> bool:
        """True if a normal task may be taken now (a free slot, no re-dispatch waiting)."""
        ...

    def claim_normal(self, task: Task, source: SourceRef, commit: Callable[[], None]) -> Claim:
        """Claim per the protocol; ``commit`` commits past the record or raises BrokerError."""
        ...

    def skip_bad_task(self, msg: Message, reason: str) -> None:
        """Report a record of the task topic that is not a task."""
        ...

    def fail(self, exc: BaseException) -> None:
        """The thread died: stop the agent."""
        ...


class NormalIntake:
    """The intake thread: re-dispatches first, then the normal task topic, within capacity.

    When no slot is free it pauses its partitions but keeps polling, so the group membership
    stays alive (``max.poll.interval.ms``) and rebalances are served. A record not signed by the
    fleet (``signer``) is no task: it is reported like an unreadable one.
    """

    POLL_S = 0.05

    def __init__(
        self, conf: dict[str, Any], topic: str, host: IntakeHost, *, signer: Signer, name: str
    ) -> None:
        self._conf = conf
        self._signer = signer
        self._topic = topic
        self._host = host
        self._consumer: Consumer | None = None
        self._paused: set[tuple[str, int]] = set()
        self._reassigned = False  # the assignment changed since the last resume
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"{name}-intake", daemon=True)

    def start(self) -> None:
        """Create the group consumer (it joins on first subscription) and start the thread."""
        try:
            self._consumer = Consumer(self._conf)
        except KafkaException as exc:
            raise broker_error("cannot create the task consumer", exc) from exc
        self._thread.start()

    def stop(self) -> None:
        """Stop taking work, leave the group (``close()``), wait for the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        elif self._consumer is not None and self._thread.ident is None:
            self._consumer.close()  # created but never run (start-up failed)
        self._consumer = None

    def _loop(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        subscribed = False
        try:
            while not self._stop.is_set():
                self._host.take_priority()
                if not subscribed:
                    if not self._host.wants_group():
                        self._stop.wait(self.POLL_S)
                        continue
                    consumer.subscribe(
                        [self._topic],
                        on_assign=self._assigned,
                        on_revoke=self._forget,
                        on_lost=self._forget,
                    )
                    subscribed = True
                take = self._host.free_for_normal()
                self._set_paused(consumer, not take)
                msg = consumer.poll(self.POLL_S)
                if msg is None or self._stop.is_set():
                    continue
                if msg.error():
                    log.warning("task consumer: %s", msg.error())
                    continue
                self._handle(consumer, msg)
        except Exception as exc:
            self._host.fail(exc)
        finally:
            try:
                consumer.close()  # leaves the group: our partitions move at once
            except KafkaException as exc:
                log.warning("task consumer close: %s", exc)

    def _handle(self, consumer: Consumer, msg: Message) -> None:
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        assert topic is not None and partition is not None and offset is not None
        if not self._host.free_for_normal():
            # Fetched just before we paused (or a re-dispatch took the slot): read it again later.
            self._seek_back(consumer, topic, partition, offset)
            return
        try:
            task = self._signer.open(Task, msg)
        except CodecError as exc:
            self._host.skip_bad_task(msg, str(exc))
            self._commit(consumer, topic, partition, offset)
            return
        source = SourceRef(topic=topic, partition=partition, offset=offset)
        outcome = self._host.claim_normal(
            task, source, lambda: self._commit(consumer, topic, partition, offset)
        )
        if outcome is Claim.RETRY:
            self._seek_back(consumer, topic, partition, offset)

    @staticmethod
    def _commit(consumer: Consumer, topic: str, partition: int, offset: int) -> None:
        try:
            result = consumer.commit(
                offsets=[TopicPartition(topic, partition, offset + 1)], asynchronous=False
            )
        except KafkaException as exc:
            raise broker_error(f"commit of {topic}[{partition}]@{offset + 1} failed", exc) from exc
        for tp in result or ():
            if tp.error is not None:
                raise BrokerError(f"commit of {topic}[{partition}]@{offset + 1} failed: {tp.error}")

    def _seek_back(self, consumer: Consumer, topic: str, partition: int, offset: int) -> None:
        if not any(tp.topic == topic and tp.partition == partition for tp in consumer.assignment()):
            return  # no longer ours: its new owner reads it from the committed offset
        try:
            consumer.seek(TopicPartition(topic, partition, offset))
        except KafkaException as exc:
            log.warning("cannot rewind %s[%d] to %d: %s", topic, partition, offset, exc)

    def _set_paused(self, consumer: Consumer, paused: bool) -> None:
        assignment = consumer.assignment()
        if paused:
            fresh = [tp for tp in assignment if (tp.topic, tp.partition) not in self._paused]
            if fresh:
                consumer.pause(fresh)
                self._paused.update((tp.topic, tp.partition) for tp in fresh)
        elif self._paused or self._reassigned:
            # Resume the whole assignment, not only what we remember pausing: librdkafka keeps a
            # partition's pause flag when it is revoked and assigned back (which we forget), and
            # such a partition would never be read again.
            if assignment:
                consumer.resume(assignment)
            self._paused.clear()
            self._reassigned = False

    def _forget(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._paused.discard((tp.topic, tp.partition))
        self._reassigned = True

    def _assigned(self, _consumer: Consumer, _partitions: list[TopicPartition]) -> None:
        self._reassigned = True
