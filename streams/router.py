"""The records of the monitor's faust agent, each decoded, checked and handed to its part.

``task-events``, ``tasks.priority`` and ``control`` are co-partitioned by agent id. A record that
is not signed by the fleet (when it has a key), does not decode, or sits in a partition other
than its agent's, goes to the dead-letter topic with the reason and is skipped; so does one whose
handling raises (reason ``internal: <type>``): no single record may stop the monitor.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from agent_failover.config import Topics
from agent_failover.errors import CodecError, Refusal
from agent_failover.models import Control, EventKind, Record, Redispatch, TaskEvent
from agent_failover.signing import Signer
from agent_failover.streams.channels import Message
from agent_failover.streams.deadletters import DeadLetters
from agent_failover.streams.events import FENCED_EPOCH, EventResult, apply_event, apply_redispatch
from agent_failover.streams.index import RecordIndex
from agent_failover.streams.metrics import MonitorMetrics
from agent_failover.streams.outcomes import FINAL, OutcomePublisher
from agent_failover.streams.ownership import Ownership
from agent_failover.streams.recovery import RecoveryBook, stamped
from agent_failover.streams.reservations import ReservationBook
from agent_failover.streams.state import AgentRecord
from agent_failover.streams.writer import DecisionWriter

log = logging.getLogger(__name__)

_R = TypeVar("_R", bound=Record)


class Router:
    """Task events and dispatches update the agent's record (released tasks and late claims are
    dispatched at once; a task's accepted end is published as its outcome); decisions on
    ``control`` go to the :class:`DecisionWriter`.

    Every record change settles the reservations it shows and calls ``on_change`` (the intake
    waits for a free slot on it).
    """

    def __init__(
        self,
        topics: Topics,
        *,
        ownership: Ownership,
        index: RecordIndex,
        writer: DecisionWriter,
        reservations: ReservationBook,
        dead_letters: DeadLetters,
        metrics: MonitorMetrics,
        recovery: RecoveryBook,
        outcomes: OutcomePublisher,
        signer: Signer,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._topics = topics
        self._signer = signer
        self._ownership = ownership
        self._index = index
        self._writer = writer
        self._reservations = reservations
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._recovery = recovery
        self._outcomes = outcomes
        self._on_change = on_change

    async def on_message(self, msg: Message, now: float) -> None:
        """Handle one record of task-events, tasks.priority or control (``now``: the monitor's
        monotonic clock). Never raises: a record whose handling fails is dead-lettered."""
        await self._dead_letters.contain(msg, lambda: self._handle(msg, now))

    async def _handle(self, msg: Message, now: float) -> None:
        topic = msg.topic
        wall = time.time()  # when progress was received, for the loss and resume figures
        if topic == self._topics.task_events:
            ev = await self._decode(TaskEvent, msg, lambda r: r.agent_id)
            if ev is not None:
                old = self._index.current(ev.agent_id)
                res = apply_event(old, ev, msg.partition)
                if res.rejected is None and ev.kind in FINAL:
                    await self._outcomes.publish(ev)  # before the record says it finished
                self._observe(ev, res, wall)
                await self._absorb(ev.agent_id, old, res, (ev.task_id, wall), now)
        elif topic == self._topics.priority:
            rd = await self._decode(Redispatch, msg, lambda r: r.target_agent_id)
            if rd is not None:
                agent_id = rd.target_agent_id
                old = self._index.current(agent_id)
                self._recovery.dispatched(rd, wall)
                res = apply_redispatch(old, rd, msg.partition)
                await self._absorb(agent_id, old, res, (rd.task_id, wall), now)
        elif topic == self._topics.control:
            ctl = await self._decode(Control, msg, lambda r: r.agent_id)
            if ctl is not None:
                await self._writer.apply(ctl, msg.partition)
                if (rec := self._index.current(ctl.agent_id)) is not None:
                    self._changed(rec)  # a fence frees its epoch's slots

    def _observe(self, ev: TaskEvent, res: EventResult, at: float) -> None:
        """What an event says about how tasks fare (counters, resumes, progress lost)."""
        if res.rejected == FENCED_EPOCH:
            self._recovery.late_event(ev)
        if res.rejected is not None or ev.task_id is None or ev.attempt is None:
            return
        if ev.kind is EventKind.COMPLETED:
            self._metrics.tasks_completed.inc()
        elif ev.kind is EventKind.FAILED:
            self._metrics.tasks_failed.inc()
        elif ev.kind is EventKind.CLAIMED and ev.attempt > 1:
            self._recovery.claimed(ev.task_id, ev.attempt, at)

    async def _absorb(
        self,
        agent_id: str,
        old: AgentRecord | None,
        res: EventResult,
        progress: tuple[str | None, float],
        now: float,
    ) -> None:
        """Store an event's outcome, with the time its task's progress was received
        (``progress``: task id and wall time); tasks it queued (released, late claims) move
        now, not at the next tick."""
        if res.record is not old:
            task_id, received = progress
            if task_id is not None:
                res = dataclasses.replace(res, record=stamped(old, res.record, task_id, received))
            self._index.store(agent_id, res.record)
            self._changed(res.record)
        if res.rejected:
            self._metrics.rejected.labels(reason=res.rejected).inc()
        if res.to_dispatch:
            slots = [res.record.tasks[t] for t in res.to_dispatch]
            await self._writer.dispatch(res.record, slots, now)

    def _changed(self, record: AgentRecord) -> None:
        self._reservations.settle(record)
        self._on_change()

    async def _decode(self, cls: type[_R], msg: Message, key_of: Callable[[_R], str]) -> _R | None:
        try:
            rec = self._signer.open(cls, msg)
        except CodecError as exc:
            await self._dead_letters.send(msg, str(exc), exc.refusal)
            return None
        agent_id = key_of(rec)
        expected = self._ownership.partition_of(agent_id)
        if expected != msg.partition:
            await self._dead_letters.send(
                msg,
                f"{cls.RECORD_TYPE} for {agent_id!r} in partition {msg.partition}, expected "
                f"{expected}: key it by agent id, murmur2 partitioner",
                Refusal.WRONG_PARTITION,
            )
            return None
        return rec
