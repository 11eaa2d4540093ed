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
from agent_failover.streams.channels import Send
from agent_failover.streams.decisions import DecisionLog, Fence, Move
from agent_failover.streams.detection import DeadEpoch
from agent_failover.streams.dispatch import apply_control, free_by_pool, plan_moves
from agent_failover.streams.index import RecordIndex
from agent_failover.streams.metrics import MonitorMetrics
from agent_failover.streams.ownership import Ownership
from agent_failover.streams.recovery import RecoveryBook
from agent_failover.streams.reservations import ReservationBook
from agent_failover.streams.state import AgentRecord, SlotStatus, TaskSlot
from agent_failover.streams.targets import TargetPool

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
        recovery: RecoveryBook,
    ) -> None:
        self._topics = config.topics
        self._timeout = config.heartbeat_timeout
        self._stuck_after = config.stuck_after
        self._monitor_id = monitor_id
        self._send = send
        self._ownership = ownership
        self._index = index
        self._decisions = decisions
        self._reservations = reservations
        self._targets = targets
        self._metrics = metrics
        self._recovery = recovery
        # Moves that found no target at their last try.
        self._unplaced: set[Move] = set()
        # Queued moves and since when (monitor clock) each has waited while a slot was free.
        self._queued_since: dict[Move, float] = {}
        self._stuck = 0

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
            dead.detail,
        )
        await self._write(ctl)
        self._decisions.wrote(key, now)
        self._reservations.reserve_plan(plan, now, self._ownership.owns)
        self._metrics.failovers.labels(reason=dead.reason.value).inc()
        age = dead.last_heartbeat_age_s
        if dead.reason is DispatchReason.HEARTBEAT_TIMEOUT and age is not None:
            self._metrics.detection_delay.observe(max(0.0, age - self._timeout))
        log.warning(
            "fence %s epoch %d (%s, last heartbeat %s s ago): %d task(s), %d placed%s",
            dead.agent_id,
            dead.epoch,
            dead.reason.value,
            "?" if dead.last_heartbeat_age_s is None else f"{dead.last_heartbeat_age_s:.2f}",
            len(plan),
            sum(1 for e in plan if e.target_agent_id),
            f": {dead.detail}" if dead.detail else "",
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
                    self._unplaced.add(move)
                else:
                    self._unplaced.discard(move)
            if not placed:
                continue
            why = reason or group[0].reason or DispatchReason.QUEUED
            ctl = self._control(
                ControlKind.DISPATCH, agent_id, epoch, why, placed, _silence(record, epoch)
            )
            await self._write(ctl)
            self._metrics.failovers.labels(reason=why.value).inc()
            for e in placed:
                self._decisions.wrote(Move.of_entry(agent_id, e), now)
            self._reservations.reserve_plan(placed, now, self._ownership.owns)
        return unplaced

    async def dispatch_queued(self, now: float) -> None:
        """Dispatch every queued task of the owned records; publish how many found no healthy
        agent, and how many have waited longer than ``stuck_after`` while some agent of the fleet
        had a free slot (placed, but their decision not applied: stuck)."""
        waiting = 0
        since: dict[Move, float] = {}
        for rec in self._index.with_queued():
            if not self._ownership.owns(rec.agent_id):
                continue
            slots = [s for s in rec.tasks.values() if s.status is SlotStatus.QUEUED]
            for s in slots:
                move = Move.of_slot(rec.agent_id, s)
                since[move] = self._queued_since.get(move, now)
            if slots:
                waiting += await self.dispatch(rec, slots, now)
        # Moves no longer queued here (placed, finished, or their partition lost) wait no more.
        self._unplaced &= since.keys()
        if since and not self._free_slot(now):
            since = dict.fromkeys(since, now)  # a wait counts only while some slot is free
        self._queued_since = since
        self._stuck = sum(now - t > self._stuck_after for t in since.values())
        self._metrics.waiting_for_agent.set(waiting)
        self._metrics.set_stuck_moving(self._stuck)

    def _free_slot(self, now: float) -> bool:
        """Whether any healthy agent of the fleet has a free slot (moves may go to standbys)."""
        return any(free_by_pool(self._targets.pool(now), self._reservations.counts()).values())

    def moves_waiting(self) -> int:
        """How many of this worker's queued tasks found no agent at their last try."""
        return len(self._unplaced)

    def moves_stuck(self) -> int:
        """How many of this worker's queued tasks have waited longer than ``stuck_after`` while
        some agent of the fleet had a free slot (at the last tick)."""
        return self._stuck

    def _control(
        self,
        kind: ControlKind,
        agent_id: str,
        epoch: int,
        reason: DispatchReason,
        plan: tuple[PlanEntry, ...],
        last_heartbeat_age_s: float | None = None,
        detail: str | None = None,
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
            detail=detail,
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
        before = self._index.current(ctl.agent_id)
        res = apply_control(before, ctl, partition, time.time())
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
        wall = time.time()
        for rd in res.redispatches:
            self._metrics.tasks_moved.labels(reason=rd.reason.value).inc()
        self._recovery.applied(ctl, before, res.redispatches, wall)
        self._metrics.apply_seconds.observe(max(0.0, wall - ctl.issued_at))
        log.info(
            "applied %s %s of %s epoch %d: %d re-dispatched",
            ctl.kind.value,
            ctl.decision_id,
            ctl.agent_id,
            ctl.epoch,
            len(res.redispatches),
        )


def _silence(record: AgentRecord, epoch: int) -> float | None:
    """How long a fenced ``epoch`` has been silent now (wall clock), if its fence knew; ``None``
    for an epoch that is not fenced (its tasks leave a live agent)."""
    fence = record.fence_of(epoch)
    if fence is None or fence.last_heartbeat_age_s is None:
        return None
    return max(0.0, time.time() - fence.issued_at + fence.last_heartbeat_age_s)
