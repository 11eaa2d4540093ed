"""The records of the monitor's faust agent, each decoded, checked and handed to its part.

``task-events``, ``tasks.priority`` and ``control`` are co-partitioned by agent id. A record that
does not decode, or that sits in a partition other than its agent's, goes to the dead-letter
topic with the reason and is skipped: no single record may stop the monitor.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from agent_failover.config import Topics
from agent_failover.errors import CodecError
from agent_failover.models import Control, Record, Redispatch, TaskEvent
from streams.channels import Message, Send
from streams.deadletters import cut_key, dead_letter
from streams.events import EventResult, apply_event, apply_redispatch
from streams.index import RecordIndex
from streams.metrics import MonitorMetrics
from streams.ownership import Ownership
from streams.state import AgentRecord
from streams.writer import DecisionWriter

log = logging.getLogger(__name__)

_R = TypeVar("_R", bound=Record)


class Router:
    """Task events and re-dispatches update the agent's record (released tasks and late claims
    are dispatched at once); decisions on ``control`` go to the :class:`DecisionWriter`."""

    def __init__(
        self,
        topics: Topics,
        send: Send,
        *,
        ownership: Ownership,
        index: RecordIndex,
        writer: DecisionWriter,
        metrics: MonitorMetrics,
    ) -> None:
        self._topics = topics
        self._send = send
        self._ownership = ownership
        self._index = index
        self._writer = writer
        self._metrics = metrics

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

    async def _absorb(
        self, agent_id: str, old: AgentRecord | None, res: EventResult, now: float
    ) -> None:
        """Store an event's outcome; tasks it queued (released, late claims) move now, not at
        the next tick."""
        if res.record is not old:
            self._index.store(agent_id, res.record)
        if res.rejected:
            self._metrics.rejected.labels(reason=res.rejected).inc()
        if res.to_dispatch:
            slots = [res.record.tasks[t] for t in res.to_dispatch]
            await self._writer.dispatch(res.record, slots, now)

    async def _decode(self, cls: type[_R], msg: Message, key_of: Callable[[_R], str]) -> _R | None:
        try:
            rec = cls.decode(msg.value)
        except CodecError as exc:
            await self._dead_letter(msg, str(exc))
            return None
        agent_id = key_of(rec)
        expected = self._ownership.partition_of(agent_id)
        if expected != msg.partition:
            await self._dead_letter(
                msg,
                f"{cls.RECORD_TYPE} for {agent_id!r} in partition {msg.partition}, expected "
                f"{expected}: key it by agent id, murmur2 partitioner",
            )
            return None
        return rec

    async def _dead_letter(self, msg: Message, reason: str) -> None:
        record = dead_letter(
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            key=msg.key,
            value=msg.value,
            reason=reason,
            at=time.time(),
        )
        log.warning("dead letter %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, reason)
        await self._send(self._topics.dead_letter, cut_key(msg.key) or b"", record.encode(), 0)
        self._metrics.dead_letters.labels(topic=msg.topic).inc()
