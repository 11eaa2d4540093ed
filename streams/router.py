"""The records of the monitor's faust agent, each decoded, checked and handed to its part.

``task-events``, ``tasks.priority`` and ``control`` are co-partitioned by agent id. A record that
does not decode, or that sits in a partition other than its agent's, goes to the dead-letter
topic with the reason and is skipped: no single record may stop the monitor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from agent_failover.config import Topics
from agent_failover.errors import CodecError
from agent_failover.models import Control, Record, Redispatch, TaskEvent
from streams.channels import Message
from streams.deadletters import DeadLetters
from streams.events import EventResult, apply_event, apply_redispatch
from streams.index import RecordIndex
from streams.metrics import MonitorMetrics
from streams.ownership import Ownership
from streams.reservations import ReservationBook
from streams.state import AgentRecord
from streams.writer import DecisionWriter

log = logging.getLogger(__name__)

_R = TypeVar("_R", bound=Record)


class Router:
    """Task events and dispatches update the agent's record (released tasks and late claims are
    dispatched at once); decisions on ``control`` go to the :class:`DecisionWriter`.

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
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._topics = topics
        self._ownership = ownership
        self._index = index
        self._writer = writer
        self._reservations = reservations
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._on_change = on_change

    async def on_message(self, msg: Message, now: float) -> None:
        """Handle one record of task-events, tasks.priority or control (``now``: the monitor's
        monotonic clock)."""
        topic = msg.topic
        if topic == self._topics.task_events:
            ev = await self._decode(TaskEvent, msg, lambda r: r.agent_id)
            if ev is not None:
                old = self._index.current(ev.agent_id)
                await self._absorb(ev.agent_id, old, apply_event(old, ev, msg.partition), now)
        elif topic == self._topics.priority:
            rd = await self._decode(Redispatch, msg, lambda r: r.target_agent_id)
            if rd is not None:
                agent_id = rd.target_agent_id
                old = self._index.current(agent_id)
                await self._absorb(agent_id, old, apply_redispatch(old, rd, msg.partition), now)
        elif topic == self._topics.control:
            ctl = await self._decode(Control, msg, lambda r: r.agent_id)
            if ctl is not None:
                await self._writer.apply(ctl, msg.partition)
                if (rec := self._index.current(ctl.agent_id)) is not None:
                    self._changed(rec)  # a fence frees its epoch's slots

    async def _absorb(
        self, agent_id: str, old: AgentRecord | None, res: EventResult, now: float
    ) -> None:
        """Store an event's outcome; tasks it queued (released, late claims) move now, not at
        the next tick."""
        if res.record is not old:
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
            rec = cls.decode(msg.value)
        except CodecError as exc:
            await self._dead_letters.send(msg, str(exc))
            return None
        agent_id = key_of(rec)
        expected = self._ownership.partition_of(agent_id)
        if expected != msg.partition:
            await self._dead_letters.send(
                msg,
                f"{cls.RECORD_TYPE} for {agent_id!r} in partition {msg.partition}, expected "
                f"{expected}: key it by agent id, murmur2 partitioner",
            )
            return None
        return rec
