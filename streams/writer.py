"""Decisions, written and applied: fences of dead epochs, dispatches of queued tasks, and the
application of both when they come back on ``control``.

A decision is a record on the agent's control partition ("Decisions are records; the first one
counts", docs/architecture.md); every worker that might decide about the agent reads it back in
order, and the first fence per epoch and the first plan entry per (task, attempt) win
(:func:`streams.dispatch.apply_control`). This worker keeps what it wrote in a
:class:`~streams.decisions.DecisionLog` so that it never writes the same decision twice while the
first is on its way, and books its placements in a
:class:`~streams.reservations.ReservationBook` until the targets' records show them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from agent_failover.config import MonitorConfig
from agent_failover.models import Control, ControlKind, DispatchReason, PlanEntry
from streams.channels import Send
from streams.decisions import DecisionLog, Fence, Move
from streams.detection import DeadEpoch
from streams.dispatch import apply_control, plan_moves
from streams.index import RecordIndex
from streams.metrics import MonitorMetrics
from streams.ownership import Ownership
from streams.reservations import ReservationBook
from streams.state import AgentRecord, SlotStatus, TaskSlot
from streams.targets import TargetPool

log = logging.getLogger(__name__)


class DecisionWriter:
    """Writes this worker's decisions to ``control`` and applies the decisions read back from it.

    It also knows which moves wait for an agent (:meth:`moves_waiting`): the intake places new
    work only while there are none, so failover work always goes first.
    """

    def __init__(
        self,
        config: MonitorConfig,
        monitor_id: str,
        send: Send,
        *,
        ownership: Ownership,
        index: RecordIndex,
        decisions: DecisionLog,
        reservations: ReservationBook,
        targets: TargetPool,
        metrics: MonitorMetrics,
    ) -> None:
        self._topics = config.topics
        self._monitor_id = monitor_id
        self._send = send
        self._ownership = ownership
        self._index = index
        self._decisions = decisions
        self._reservations = reservations
        self._targets = targets
        self._metrics = metrics
        # Moves that found no target, and since when (monitor clock): the oldest waits longest.
        self._unplaced: dict[Move, float] = {}

    # -- writing --------------------------------------------------------------------------------

    async def fence(self, record: AgentRecord | None, dead: DeadEpoch, now: float) -> None:
        """Write the fence of ``dead`` with a plan for the tasks its epoch holds, unless this
        worker already wrote it and has not yet seen it applied."""
        key = Fence(dead.agent_id, dead.epoch)
        if key in self._decisions:
            return
        slots = record.slots_of(dead.epoch) if record is not None else []
        movable = [s for s in slots if s.status is SlotStatus.OWNED]
        plan: tuple[PlanEntry, ...] = ()
        if movable:  # most fences move nothing: the pool is built only for those that do
            plan = plan_moves(
                movable,
                self._targets.pool(now),
                exclude={(dead.agent_id, dead.epoch)},
                reserved=self._reservations.counts(),
            )
        ctl = self._control(
            ControlKind.FENCE,
            dead.agent_id,
            dead.epoch,
            dead.reason,
            plan,
            dead.last_heartbeat_age_s,
        )
        await self._write(ctl)
        self._decisions.wrote(key, now)
        self._reservations.reserve_plan(plan, now, self._ownership.owns)
        self._metrics.failovers.labels(reason=dead.reason.value).inc()
        if dead.last_heartbeat_age_s is not None:
            self._metrics.detection_seconds.observe(dead.last_heartbeat_age_s)
        log.warning(
            "fence %s epoch %d (%s, last heartbeat %s s ago): %d task(s), %d placed",
            dead.agent_id,
            dead.epoch,
            dead.reason.value,
            "?" if dead.last_heartbeat_age_s is None else f"{dead.last_heartbeat_age_s:.2f}",
            len(plan),
            sum(1 for e in plan if e.target_agent_id),
        )

    async def dispatch(
        self,
        record: AgentRecord,
        slots: list[TaskSlot],
        now: float,
        reason: DispatchReason | None = None,
    ) -> int:
        """Write ``control{kind: dispatch}`` decisions moving ``slots`` of ``record`` (one per
        epoch), skipping moves already written; returns how many tasks found no target."""
        agent_id = record.agent_id
        slots = [s for s in slots if Move.of_slot(agent_id, s) not in self._decisions]
        if not slots:
            return 0
        pool = self._targets.pool(now)
        unplaced = 0
        for epoch in sorted({s.epoch for s in slots}):
            group = [s for s in slots if s.epoch == epoch]
            plan = plan_moves(
                group, pool, exclude={(agent_id, epoch)}, reserved=self._reservations.counts()
            )
            placed = tuple(e for e in plan if e.target_agent_id is not None)
            unplaced += len(plan) - len(placed)
            for e in plan:
                move = Move.of_entry(agent_id, e)
                if e.target_agent_id is None:
                    self._unplaced.setdefault(move, now)
                else:
                    self._unplaced.pop(move, None)
            if not placed:
                continue
            why = reason or group[0].reason or DispatchReason.QUEUED
            await self._write(self._control(ControlKind.DISPATCH, agent_id, epoch, why, placed))
            self._metrics.failovers.labels(reason=why.value).inc()
            for e in placed:
                self._decisions.wrote(Move.of_entry(agent_id, e), now)
            self._reservations.reserve_plan(placed, now, self._ownership.owns)
        return unplaced

    async def dispatch_queued(self, now: float) -> None:
        """Dispatch every queued task of the owned records; publish how many wait, and how many
        of them found no healthy agent."""
        waiting = queued = 0
        still: set[Move] = set()
        for rec in self._index.with_queued():
            if not self._ownership.owns(rec.agent_id):
                continue
            slots = [s for s in rec.tasks.values() if s.status is SlotStatus.QUEUED]
            if slots:
                queued += len(slots)
                still.update(Move.of_slot(rec.agent_id, s) for s in slots)
                waiting += await self.dispatch(rec, slots, now)
        # Moves no longer queued here (placed, finished, or their partition lost) wait no more.
        self._unplaced = {m: t for m, t in self._unplaced.items() if m in still}
        self._metrics.queued.set(queued)
        self._metrics.no_healthy_agent.set(waiting)

    def moves_waiting(self) -> int:
        """How many of this worker's queued tasks found no agent at their last try."""
        return len(self._unplaced)

    def oldest_move_since(self) -> float | None:
        """Since when (monitor clock) the longest-waiting of them has waited; None if none."""
        return min(self._unplaced.values(), default=None)

    def _control(
        self,
        kind: ControlKind,
        agent_id: str,
        epoch: int,
        reason: DispatchReason,
        plan: tuple[PlanEntry, ...],
        last_heartbeat_age_s: float | None = None,
    ) -> Control:
        return Control(
            kind=kind,
            agent_id=agent_id,
            epoch=epoch,
            decision_id=uuid.uuid4().hex,
            issued_at=time.time(),
            reason=reason,
            plan=plan,
            last_heartbeat_age_s=last_heartbeat_age_s,
            monitor_id=self._monitor_id,
        )

    async def _write(self, ctl: Control) -> None:
        """Send ``ctl`` to the agent's control partition and wait for its acknowledgement."""
        partition = self._ownership.partition_of(ctl.agent_id)
        ack = await self._send(self._topics.control, ctl.agent_id.encode(), ctl.encode(), partition)
        await ack

    # -- applying -------------------------------------------------------------------------------

    async def apply(self, ctl: Control, partition: int) -> None:
        """Apply a decision read back from ``control`` (any worker's): send its re-dispatches and
        audit record, then record it in the agent's record. Drain and promote are for agents."""
        if ctl.kind not in (ControlKind.FENCE, ControlKind.DISPATCH):
            return
        res = apply_control(self._index.current(ctl.agent_id), ctl, partition, time.time())
        if res.duplicate:
            self._metrics.duplicates.inc()
            return
        acks = []
        for rd in res.redispatches:
            target = rd.target_agent_id
            acks.append(
                await self._send(
                    self._topics.priority,
                    target.encode(),
                    rd.encode(),
                    self._ownership.partition_of(target),
                )
            )
        if res.failover is not None:
            acks.append(
                await self._send(
                    self._topics.failovers, ctl.agent_id.encode(), res.failover.encode(), 0
                )
            )
        # Only once every re-dispatch is acknowledged is the decision recorded as applied.
        await asyncio.gather(*acks)
        self._index.store(ctl.agent_id, res.record)
        self._metrics.redispatched.inc(len(res.redispatches))
        self._metrics.apply_seconds.observe(max(0.0, time.time() - ctl.issued_at))
        log.info(
            "applied %s %s of %s epoch %d: %d re-dispatched",
            ctl.kind.value,
            ctl.decision_id,
            ctl.agent_id,
            ctl.epoch,
            len(res.redispatches),
        )
