"""Applying the intake's decisions: the first decision per task record is forwarded, once.

The faust agent ``assign`` reads ``tasks.assigned`` (co-partitioned with ``tasks``: decisions
about ``tasks[p]`` are in ``tasks.assigned[p]``, written by whichever worker owned ``p``). For a
decision about source offset ``o`` of partition ``p``:

- ``o < applied_upto[p]`` (the ``intake`` table): an earlier decision about that record was
  forwarded already, this one is a duplicate (a worker restarted, or two workers decided during
  a rebalance): skip it and free the slot it reserved;
- otherwise forward the decision's bytes unchanged to ``tasks.priority`` (key: the target agent
  id, its partition by the Java partitioner), wait for the acknowledgement, then set
  ``applied_upto[p] = o + 1``.

A decision is read like every record: signed by the fleet (when it has a key) or dead-lettered.
The forwarded copy is signed again, by ``send``, for its own topic and key: a signature covers
topic, key and value, and both the topic and the key change on the way. The forward is tried
until it is acknowledged (a broker outage must not skip a decision); a copy too large for any
broker, or a decision whose handling raises, is dead-lettered instead and the next one read.

Decisions about one partition are ordered (one partition of ``tasks.assigned``) and every decider
writes them in offset order, acknowledged one by one, so the first decision about each record
comes before any decision about a later one: skipping everything below ``applied_upto[p]`` skips
only duplicates. A crash between the forward and the table write forwards the same bytes again;
the agent and the monitor de-duplicate by ``(task_id, attempt)``.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping

from agent_failover.config import Topics
from agent_failover.errors import CodecError, Refusal
from agent_failover.models import DispatchReason, Redispatch
from agent_failover.signing import Signer
from agent_failover.streams.channels import Message, Send, oversize, until_done
from agent_failover.streams.deadletters import DeadLetters
from agent_failover.streams.metrics import MonitorMetrics
from agent_failover.streams.ownership import Ownership
from agent_failover.streams.reservations import ReservationBook

log = logging.getLogger(__name__)


def invalid_decision(rd: Redispatch, partition: int) -> tuple[str, Refusal] | None:
    """Why ``rd``, read from ``tasks.assigned[partition]``, is no intake decision, and the
    dead-letter reason it counts under; None if it is one."""
    if rd.reason is not DispatchReason.NEW or rd.source is None:
        why = f"not an intake decision (reason {rd.reason.value!r}, attempt {rd.attempt})"
        return why, Refusal.INVALID
    if rd.source.partition != partition:
        why = (
            f"decision about tasks[{rd.source.partition}] in partition {partition}: write it to "
            "the partition of its source"
        )
        return why, Refusal.WRONG_PARTITION
    return None


class Assigner:
    """Forwards the first decision per task record (module docstring).

    ``progress`` is the ``intake`` table (task partition -> applied_upto); it must be written
    while handling a record of ``tasks.assigned``, so that faust writes its changelog to the
    same partition.
    """

    def __init__(
        self,
        topics: Topics,
        send: Send,
        *,
        progress: MutableMapping[int, int],
        ownership: Ownership,
        reservations: ReservationBook,
        dead_letters: DeadLetters,
        metrics: MonitorMetrics,
        signer: Signer,
    ) -> None:
        self._topics = topics
        self._send = send
        self._signer = signer
        self._metrics = metrics
        self._progress = progress
        self._ownership = ownership
        self._reservations = reservations
        self._dead_letters = dead_letters

    async def on_decision(self, msg: Message) -> None:
        """Handle one record of ``tasks.assigned``. Never raises: the forward is retried until
        acknowledged (a decision left behind would be skipped as a duplicate later); a record
        whose handling fails otherwise is dead-lettered."""
        await self._dead_letters.contain(msg, lambda: self._apply(msg))

    async def _apply(self, msg: Message) -> None:
        try:
            rd = self._signer.open(Redispatch, msg)
        except CodecError as exc:
            await self._dead_letters.send(msg, str(exc), exc.refusal)
            return
        reason = invalid_decision(rd, msg.partition)
        if reason is not None:
            await self._dead_letters.send(msg, *reason)
            return
        assert rd.source is not None
        p, o = rd.source.partition, rd.source.offset
        if o < self._progress.get(p, 0):
            self._metrics.duplicates.inc()
            self._reservations.release((rd.target_agent_id, rd.target_epoch), rd.task_id)
            log.info("task %s: decision %s is not the first, skipped", rd.task_id, rd.decision_id)
            return
        target = rd.target_agent_id
        assert msg.value is not None  # it decoded
        key, value = target.encode(), bytes(msg.value)
        too_large = oversize(key, value)
        if too_large is not None:
            await self._dead_letters.send(msg, f"its dispatch: {too_large}", Refusal.TOO_LARGE)
            return
        partition = self._ownership.partition_of(target)

        async def forward() -> None:
            ack = await self._send(self._topics.priority, key, value, partition)
            await ack

        await until_done(forward, f"forwarding {msg.topic}[{msg.partition}]@{msg.offset}")
        # Only now: a crash before this line forwards the same bytes again, never nothing.
        self._progress[p] = o + 1
        self._metrics.tasks_dispatched.inc()
