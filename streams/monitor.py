"""The monitor worker's orchestration: glue between faust, the pure decision functions and Kafka.

:class:`Monitor` handles each record of the faust agent (task-events, tasks.priority, control)
and runs the detection tick. Every decision is made by the pure modules; this class only reads
the table, the liveness map and the fleet directory, writes decision records and applies them.

Targets are chosen among this worker's own healthy agents and those other workers vouch for in
their fleet summaries (:mod:`streams.fleet`); the tick publishes this worker's own summary.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any, Protocol, TypeVar

from agent_failover.config import MonitorConfig
from agent_failover.errors import CodecError
from agent_failover.models import (
    Control,
    ControlKind,
    DispatchReason,
    PlanEntry,
    Record,
    Redispatch,
    TaskEvent,
)
from agent_failover.partitioner import partition_for
from streams.deadletters import dead_letter
from streams.detection import (
    DeadEpoch,
    DetectionPolicy,
    Health,
    dead_epochs,
    health_of,
    timeout_at,
)
from streams.dispatch import (
    AgentEpoch,
    Candidate,
    Settlement,
    apply_control,
    candidates,
    plan_moves,
    settle_claim,
)
from streams.events import apply_event, apply_redispatch
from streams.fleet import PUBLISH_INTERVAL, FleetDirectory, encode_summary, with_remote
from streams.liveness import LivenessTracker
from streams.metrics import MonitorMetrics
from streams.state import AgentRecord, LiveEntry, SlotStatus, TaskSlot

log = logging.getLogger(__name__)

_R = TypeVar("_R", bound=Record)
#: send(topic, key, value, partition) -> awaitable acknowledgement (faust producer semantics).
Send = Callable[[str, bytes, bytes, int], Awaitable[Awaitable[Any]]]
#: committed(partitions) -> the agents group's committed offset per (topic, partition).
Committed = Callable[[Collection[tuple[str, int]]], dict[tuple[str, int], int | None]]


class Message(Protocol):
    """The part of a faust message the handlers use."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class Table(Protocol):
    """The part of the faust table the monitor uses."""

    def get(self, key: str) -> AgentRecord | None: ...
    def __setitem__(self, key: str, value: AgentRecord) -> None: ...
    def __len__(self) -> int: ...
    def items(self) -> Iterable[tuple[str, AgentRecord]]: ...


def monitor_id() -> str:
    """This worker's name in decision records: host and process id."""
    return f"{socket.gethostname()}-{os.getpid()}"


#: How long the local candidates (healthy agents, for planning and the fleet summary) are reused:
#: building them walks every owned agent. Placements meanwhile are counted by the reservations;
#: remote candidates are older still (a summary every 0.5 s).
POOL_TTL = 0.2


class Monitor:
    """One worker's detection and failover logic over its owned partitions.

    ``directory`` holds other workers' fleet summaries (fed by the liveness thread); its
    ``monitor_id`` names this worker in decision records and in its own summaries.

    The detection tick costs what changed or expired, not the fleet (docs/architecture.md,
    "Monitor hot path"): it asks :func:`dead_epochs` only about agents whose record or epoch
    changed, whose heartbeats stopped, whose first heartbeat is overdue, or that have an open
    decision. Every other agent's verdict cannot have changed since it was last asked.
    """

    def __init__(
        self,
        config: MonitorConfig,
        table: Table,
        liveness: LivenessTracker,
        metrics: MonitorMetrics,
        send: Send,
        committed: Committed | None = None,
        directory: FleetDirectory | None = None,
    ) -> None:
        self.config = config
        self.topics = config.topics
        self.policy = DetectionPolicy.from_config(config)
        self.table = table
        self.liveness = liveness
        self.metrics = metrics
        self._send = send
        self._committed = committed
        if directory is None:
            directory = FleetDirectory(monitor_id(), self.topics.agent_partitions)
        self.directory = directory
        self.monitor_id = directory.monitor_id
        self.owned_since: dict[int, float] = {}
        # Decisions written but not yet seen applied in the table: never written twice by us.
        self._pending: dict[tuple[str, str, str, int], float] = {}
        self._reserved: dict[AgentEpoch, dict[str, float]] = {}
        # agent id -> epoch -> when this worker first saw it: a new epoch gets a full timeout
        # for its first heartbeat (agent_started can be processed before that heartbeat arrives).
        self._known_since: dict[str, dict[int, float]] = {}
        self._last_tick: float | None = None  # None: no tick yet, nothing can have stalled
        self._last_settle = 0.0
        self._last_health = 0.0
        self._last_publish = 0.0
        self._published: frozenset[int] | None = None  # partitions of the last summary sent
        self._publishing: asyncio.Future[None] | None = None
        # Beyond this the heartbeat thread or the loop was starved: liveness is not trustworthy.
        self._stall_limit = max(self.policy.heartbeat_timeout / 3, 0.5)
        self._pending_ttl = max(10.0, 3 * self.policy.heartbeat_timeout)
        # The owned records, kept where the monitor writes the table and rebuilt from the table
        # after a rebalance or recovery (or if the table changed behind our back): the tick must
        # not walk the table.
        self._records: dict[str, AgentRecord] = {}
        self._indexed: frozenset[int] | None = None  # partitions of the index; None: rebuild
        self._table_len = 0  # len(table) after our last write: another change means rebuild
        self._queued: set[str] = set()  # agents whose record holds queued tasks
        self._unconfirmed: set[str] = set()  # agents whose record holds unconfirmed claims
        # Who detection must ask about at the next tick (see the class docstring).
        self._dirty: set[str] = set()  # record written or epoch changed since the last tick
        self._watch: set[str] = set()  # dead epochs found, not yet fenced and applied
        self._quiet: set[str] = set()  # silent, but fenced or stopped: nothing to decide
        self._timers: list[tuple[float, str]] = []  # (deadline, agent): unheard newest epochs
        self._due: dict[str, float] = {}  # agent -> its newest timer (no duplicates in the heap)
        self._local: tuple[float, list[Candidate]] | None = None  # (built at, candidates)
        self._partition_cache: dict[str, int] = {}
        self._owns_all = False  # every agent partition is ours: nothing to filter
        self._health_job: asyncio.Future[None] | None = None

    def partition_of(self, agent_id: str) -> int:
        """The agent-keyed partition of ``agent_id``."""
        # A plain dict, not lru_cache: it is asked once per agent in every pass over the fleet.
        p = self._partition_cache.get(agent_id)
        if p is None:
            if len(self._partition_cache) >= 1 << 20:  # agent ids churn: bound the memory
                self._partition_cache.clear()
            p = self._partition_cache[agent_id] = partition_for(
                agent_id, self.topics.agent_partitions
            )
        return p

    # -- ownership and clocks -------------------------------------------------------------------

    def set_owned(self, partitions: Collection[int], now: float) -> None:
        """The partitions faust assigned this worker: new ones start their grace period."""
        wanted = set(partitions)
        for p in list(self.owned_since):
            if p not in wanted:
                del self.owned_since[p]
        for p in wanted - self.owned_since.keys():
            self.owned_since[p] = now
            log.info("took over partition %d: grace %.1fs", p, self.policy.grace_period)
        self._owns_all = len(self.owned_since) == self.topics.agent_partitions
        self.liveness.assign(wanted)

    def rearm_grace(self, now: float) -> None:
        """Start every grace period again (after a rebalance, recovery or a stall)."""
        for p in self.owned_since:
            self.owned_since[p] = now

    # -- the detection tick ---------------------------------------------------------------------

    async def tick(self, owned: Collection[int], busy: bool) -> None:
        """One detection round over the owned partitions (``busy``: rebalancing or recovering)."""
        now = time.monotonic()
        self.set_owned(owned, now)
        stalled = self._last_tick is not None and now - self._last_tick > self._stall_limit
        stalled = stalled or now - self.liveness.last_poll > self._stall_limit
        self._last_tick = now
        if busy or stalled or self.liveness.assigned != frozenset(owned):
            if stalled:
                log.warning("monitor stalled: no decisions, grace period restarted")
            if busy:
                self._indexed = None  # recovery writes the table without us: rebuild after it
            self.rearm_grace(now)
            return
        if not owned:
            # Still publish: an empty summary retracts this worker's claims at once.
            self._publish_fleet(owned, now)
            return
        partitions = frozenset(owned)
        if self._indexed != partitions or len(self.table) != self._table_len:
            self._reindex(partitions, now)
        self._expire(now)
        await self._detect(now)
        await self._dispatch_queued(now)
        if now - self._last_settle >= 1.0:
            self._last_settle = now
            await self._settle_fenced(now)
        if now - self._last_health >= 1.0:
            self._last_health = now
            self._publish_health(now)
        self._publish_fleet(owned, now)

    async def _detect(self, now: float) -> None:
        """Fence the dead epochs among the agents whose verdict may have changed."""
        policy = self.policy
        for agent_id in self.liveness.drain_changed():
            self._dirty.add(agent_id)
        dirty, self._dirty = self._dirty, set()
        self._quiet -= dirty
        suspects = dirty | self._watch
        for live in self.liveness.expired(now - policy.heartbeat_timeout):
            if live.agent_id not in self._quiet:
                suspects.add(live.agent_id)
        timers = self._timers
        while timers and timers[0][0] <= now:
            at, agent_id = heapq.heappop(timers)
            if self._due.get(agent_id) == at:
                del self._due[agent_id]
            suspects.add(agent_id)
        order = sorted(suspects)
        done = 0
        try:
            for agent_id in order:
                await self._examine(agent_id, agent_id in dirty, now)
                done += 1
        finally:
            # A failed write aborts the tick: whoever was not examined is asked again next tick.
            self._dirty.update(order[done:])

    async def _examine(self, agent_id: str, changed: bool, now: float) -> None:
        if not self._owns(agent_id):
            self._forget(agent_id)
            return
        rec, live = self._records.get(agent_id), self.liveness.get(agent_id)
        if rec is None and live is None:
            self._forget(agent_id)
            return
        if changed:
            self._note(agent_id, rec, live, now)
        since = self.owned_since[self.partition_of(agent_id)]
        known = self._known_since.get(agent_id)
        dead = dead_epochs(rec, live, now, since, self.policy, known)
        for d in dead:
            if ("fence", agent_id, "", d.epoch) not in self._pending:
                await self._fence(rec, d, self._pool(now), now)
        if dead:
            self._watch.add(agent_id)  # until the fence is applied (or must be written again)
            return
        self._watch.discard(agent_id)
        at = timeout_at(rec, live, since, self.policy, known)
        if at is None:
            if live is not None and now - live.last_seen >= self.policy.heartbeat_timeout:
                self._quiet.add(agent_id)  # silent but closed: skip it until it changes
            return
        # A deadline the scan of silent heartbeats does not find (no heartbeat yet from the
        # newest epoch, or the grace period): look again when it passes.
        heard = live is not None and at == live.last_seen + self.policy.heartbeat_timeout
        if not heard and self._due.get(agent_id) != at:
            self._due[agent_id] = at
            heapq.heappush(self._timers, (at, agent_id))

    def _forget(self, agent_id: str) -> None:
        self._watch.discard(agent_id)
        self._quiet.discard(agent_id)
        self._known_since.pop(agent_id, None)

    def _note(
        self, agent_id: str, rec: AgentRecord | None, live: LiveEntry | None, now: float
    ) -> None:
        """Remember when this worker first saw the agent's current epochs (monitor clock)."""
        epochs = {e for e in (rec.epoch if rec else None, live.epoch if live else None) if e}
        known = self._known_since.setdefault(agent_id, {})
        for epoch in epochs:
            known.setdefault(epoch, now)
        if len(known) > len(epochs):  # forget superseded epochs
            for epoch in [e for e in known if e not in epochs]:
                del known[epoch]

    def _reindex(self, partitions: frozenset[int], now: float) -> None:
        """Rebuild the owned-records index from the table, and ask about every owned agent."""
        records = {
            a: r for a, r in self.table.items() if r is not None and r.partition in partitions
        }
        self._records = records
        self._queued, self._unconfirmed = set(), set()
        for rec in records.values():
            self._classify(rec)
        self._indexed, self._table_len = partitions, len(self.table)
        self.liveness.drain_changed()  # everyone is asked below (drained first: none is lost)
        lives = list(self._owned_lives())
        everyone = records.keys() | set(lives)
        for agent_id in [a for a in self._known_since if a not in everyone]:
            del self._known_since[agent_id]
        self._dirty = set(everyone)
        self._watch.clear()
        self._quiet.clear()
        self._timers, self._due = [], {}
        self._local = None
        log.info("indexed %d records, %d live agents", len(records), len(lives))

    def _classify(self, rec: AgentRecord) -> None:
        agent_id = rec.agent_id
        queued = unconfirmed = False
        for s in rec.tasks.values():
            if s.status is SlotStatus.QUEUED:
                queued = True
            elif s.status is SlotStatus.UNCONFIRMED:
                unconfirmed = True
        for flag, group in ((queued, self._queued), (unconfirmed, self._unconfirmed)):
            if flag:
                group.add(agent_id)
            else:
                group.discard(agent_id)

    def _store(self, agent_id: str, rec: AgentRecord) -> None:
        """Write ``rec`` to the table, and to the index the tick reads."""
        self.table[agent_id] = rec
        self._table_len = len(self.table)
        self._records[agent_id] = rec
        self._classify(rec)
        self._dirty.add(agent_id)

    def _owned_records(self, agent_ids: Iterable[str]) -> list[AgentRecord]:
        found = ((a, self._records.get(a)) for a in sorted(agent_ids))
        return [r for a, r in found if r is not None and self._owns(a)]

    def _local_candidates(self, now: float) -> list[Candidate]:
        """This worker's healthy agents (one pass over the liveness map), reused for POOL_TTL."""
        if self._local is not None and now - self._local[0] < POOL_TTL:
            return self._local[1]
        local = self._scan_candidates(frozenset(self.owned_since), now)
        self._local = (now, local)
        return local

    def _pool(self, now: float) -> list[Candidate]:
        """The planning pool: this worker's candidates, then those other workers vouch for."""
        remote = self.directory.candidates(now, self.owned_since.keys())
        return with_remote(self._local_candidates(now), remote)

    def _publish_fleet(self, owned: Collection[int], now: float) -> None:
        """Publish this worker's fleet summary every PUBLISH_INTERVAL, and at once when the owned
        partitions changed (a rebalance): readers must stop trusting the previous owner soon."""
        partitions = frozenset(owned)
        if partitions == self._published and now - self._last_publish < PUBLISH_INTERVAL:
            return
        if self._publishing is not None and not self._publishing.done():
            return  # the previous summary is still being built or sent: do not pile them up
        # In a task of its own, acknowledgement not awaited: a summary is soft state, the next one
        # follows soon, and detection must never wait on it (a producer blocks on a missing
        # topic's metadata until its request timeout).
        self._publishing = asyncio.ensure_future(self._publish_summary(partitions, now))
        self._published, self._last_publish = partitions, now

    async def _publish_summary(self, partitions: frozenset[int], now: float) -> None:
        # Built in a worker thread: it walks every owned agent (tens of milliseconds at 20k), and
        # on the event loop that delayed the detection ticks behind it by as much.
        reserved, at = self._reservations(), time.time()
        try:
            loop = asyncio.get_running_loop()
            local, value = await loop.run_in_executor(
                None, self._build_summary, partitions, reserved, now, at
            )
        except Exception:
            log.exception("cannot build the fleet summary")
            return
        if self._local is None or self._local[0] <= now:
            self._local = (now, local)  # planning reuses it for POOL_TTL
        await self._send_summary(value)

    def _build_summary(
        self, partitions: frozenset[int], reserved: dict[AgentEpoch, int], now: float, at: float
    ) -> tuple[list[Candidate], bytes]:
        """Runs in a worker thread: reads only copies, and the index through single lookups
        (each atomic under the GIL; records are immutable)."""
        local = self._scan_candidates(partitions, now) if partitions else []
        return local, encode_summary(self.monitor_id, partitions, local, reserved, at)

    def _scan_candidates(self, partitions: Collection[int], now: float) -> list[Candidate]:
        lives = self.liveness.snapshot()
        if len(partitions) != self.topics.agent_partitions:
            part = self.partition_of
            lives = {a: e for a, e in lives.items() if part(a) in partitions}
        return candidates(lives.values(), self._records, now, self.policy)

    async def _send_summary(self, value: bytes) -> None:
        try:
            await self._send(self.topics.fleet, self.monitor_id.encode(), value, 0)
        except Exception:
            log.exception("cannot publish the fleet summary; other workers will not target ours")

    def _owns(self, agent_id: str) -> bool:
        return self._owns_all or self.partition_of(agent_id) in self.owned_since

    def _owned_lives(self) -> dict[str, LiveEntry]:
        """The liveness map's entries of owned partitions (a copy)."""
        lives = self.liveness.snapshot()
        if self._owns_all:
            return lives
        owns = self._owns
        return {a: e for a, e in lives.items() if owns(a)}

    def _expire(self, now: float) -> None:
        for key, at in list(self._pending.items()):
            kind, agent_id, task_id, n = key
            rec = self._records.get(agent_id)
            if kind == "fence":
                applied = rec is not None and rec.is_fenced(n)
            else:
                slot = rec.tasks.get(task_id) if rec is not None else None
                applied = slot is None or slot.attempt != n
            if applied or now - at > self._pending_ttl:
                del self._pending[key]
        for target, tasks in list(self._reserved.items()):
            for task_id, until in list(tasks.items()):
                if until <= now:
                    del tasks[task_id]
            if not tasks:
                del self._reserved[target]

    def _reservations(self) -> dict[AgentEpoch, int]:
        return {k: len(v) for k, v in self._reserved.items()}

    def _publish_health(self, now: float) -> None:
        """Owned agents by health, once a second, counted in a worker thread (a pass over every
        owned agent must not delay detection ticks)."""
        if self._health_job is not None and not self._health_job.done():
            return
        # Copies of what the loop mutates; the worker only reads them (and records are immutable).
        job = functools.partial(
            self._health_counts, dict(self._records), dict(self.owned_since), now
        )
        self._health_job = asyncio.ensure_future(self._count_health(job, now))

    async def _count_health(self, job: Callable[[], dict[Health, int]], now: float) -> None:
        try:
            counts = await asyncio.get_running_loop().run_in_executor(None, job)
        except Exception:
            log.exception("cannot count agents by health")
            return
        self.metrics.set_health(counts)
        self.metrics.fleet_targets.set(len(self.directory.candidates(now, self.owned_since.keys())))

    def _health_counts(
        self, records: dict[str, AgentRecord], owned_since: dict[int, float], now: float
    ) -> dict[Health, int]:
        counts: dict[Health, int] = {}
        lives = self.liveness.snapshot()
        partition_of, known, policy = self.partition_of, self._known_since, self.policy
        everyone = itertools.chain(lives, (a for a in records if a not in lives))
        for agent_id in everyone:
            since = owned_since.get(partition_of(agent_id))
            if since is None:
                continue  # not ours
            h = health_of(
                records.get(agent_id), lives.get(agent_id), now, since, policy, known.get(agent_id)
            )
            counts[h] = counts.get(h, 0) + 1
        return counts

    # -- decisions ------------------------------------------------------------------------------

    async def _fence(
        self, rec: AgentRecord | None, dead: DeadEpoch, pool: list[Candidate], now: float
    ) -> None:
        slots = rec.slots_of(dead.epoch) if rec is not None else []
        movable = [s for s in slots if s.status is SlotStatus.OWNED]
        unconfirmed = [s for s in slots if s.status is SlotStatus.UNCONFIRMED]
        if unconfirmed:
            movable += await self._took_effect(unconfirmed, waited=0.0)
        plan = plan_moves(
            movable, pool, exclude={(dead.agent_id, dead.epoch)}, reserved=self._reservations()
        )
        ctl = self._control(
            ControlKind.FENCE,
            dead.agent_id,
            dead.epoch,
            dead.reason,
            plan,
            dead.last_heartbeat_age_s,
        )
        await self._write_control(ctl)
        self._pending[("fence", dead.agent_id, "", dead.epoch)] = now
        self._reserve(plan, now)
        self.metrics.failovers.labels(reason=dead.reason.value).inc()
        if dead.last_heartbeat_age_s is not None:
            self.metrics.detection_seconds.observe(dead.last_heartbeat_age_s)
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
        rec: AgentRecord,
        slots: list[TaskSlot],
        pool: list[Candidate] | None,
        now: float,
        reason: DispatchReason | None = None,
    ) -> int:
        """Write ``control{kind: dispatch}`` decisions moving ``slots`` (grouped by epoch);
        returns how many tasks found no target."""
        slots = [
            s for s in slots if ("task", rec.agent_id, s.task_id, s.attempt) not in self._pending
        ]
        if not slots:
            return 0
        if pool is None:
            pool = self._pool(now)
        unplaced = 0
        for epoch in sorted({s.epoch for s in slots}):
            group = [s for s in slots if s.epoch == epoch]
            plan = plan_moves(
                group, pool, exclude={(rec.agent_id, epoch)}, reserved=self._reservations()
            )
            placed = tuple(e for e in plan if e.target_agent_id is not None)
            unplaced += len(plan) - len(placed)
            if not placed:
                continue
            why = reason or group[0].reason or DispatchReason.QUEUED
            await self._write_control(
                self._control(ControlKind.DISPATCH, rec.agent_id, epoch, why, placed)
            )
            self.metrics.failovers.labels(reason=why.value).inc()
            for e in placed:
                self._pending[("task", rec.agent_id, e.task_id, e.attempt - 1)] = now
            self._reserve(placed, now)
        return unplaced

    async def _dispatch_queued(self, now: float) -> None:
        waiting = queued = 0
        for rec in self._owned_records(self._queued):
            slots = [s for s in rec.tasks.values() if s.status is SlotStatus.QUEUED]
            if slots:
                queued += len(slots)
                # No pool passed: dispatch builds it only if a slot is not already decided.
                waiting += await self.dispatch(rec, slots, None, now)
        self.metrics.queued.set(queued)
        self.metrics.no_healthy_agent.set(waiting)

    async def _settle_fenced(self, now: float) -> None:
        """Unconfirmed claims of fenced epochs: move those the agents' offsets show as taken."""
        wall = time.time()
        limit = self.config.agents_session_timeout
        for rec in self._owned_records(self._unconfirmed):
            todo: list[tuple[TaskSlot, float]] = []
            for s in rec.tasks.values():
                fence = rec.fence_of(s.epoch) if s.status is SlotStatus.UNCONFIRMED else None
                if fence is not None and wall - fence.issued_at < 2 * limit:
                    todo.append((s, wall - fence.issued_at))
            if not todo:
                continue
            took: list[TaskSlot] = []
            for s, waited in todo:
                took += await self._took_effect([s], waited)
            if took:
                await self.dispatch(rec, took, None, now, DispatchReason.LATE_CLAIM)

    async def _took_effect(self, slots: list[TaskSlot], waited: float) -> list[TaskSlot]:
        sources = {(s.source.topic, s.source.partition) for s in slots if s.source is not None}
        if self._committed is None or not sources:
            return []
        try:
            loop = asyncio.get_running_loop()
            committed = await loop.run_in_executor(None, self._committed, sources)
        except Exception:
            log.exception("cannot read the agents' committed offsets; claims stay unconfirmed")
            return []
        limit = self.config.agents_session_timeout
        out = []
        for s in slots:
            if s.source is None:
                continue
            offset = committed.get((s.source.topic, s.source.partition))
            if settle_claim(s.source.offset, offset, waited, limit) is Settlement.TOOK_EFFECT:
                out.append(s)
        return out

    def _reserve(self, plan: Iterable[PlanEntry], now: float) -> None:
        until = now + self.policy.heartbeat_timeout
        for e in plan:
            if e.target_agent_id is not None and e.target_epoch is not None:
                key = (e.target_agent_id, e.target_epoch)
                self._reserved.setdefault(key, {})[e.task_id] = until

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
            monitor_id=self.monitor_id,
        )

    async def _write_control(self, ctl: Control) -> None:
        ack = await self._send(
            self.topics.control,
            ctl.agent_id.encode(),
            ctl.encode(),
            self.partition_of(ctl.agent_id),
        )
        await ack

    # -- records from the faust agent -----------------------------------------------------------

    async def on_message(self, msg: Message) -> None:
        """Handle one record of task-events, tasks.priority or control."""
        topic = msg.topic
        if topic == self.topics.task_events:
            ev = await self._decode(TaskEvent, msg, lambda r: r.agent_id)
            if ev is not None:
                await self._on_event(ev, msg.partition)
        elif topic == self.topics.priority:
            rd = await self._decode(Redispatch, msg, lambda r: r.target_agent_id)
            if rd is not None:
                await self._on_redispatch(rd, msg.partition)
        elif topic == self.topics.control:
            ctl = await self._decode(Control, msg, lambda r: r.agent_id)
            if ctl is not None:
                await self._on_control(ctl, msg.partition)

    async def _decode(self, cls: type[_R], msg: Message, key_of: Callable[[_R], str]) -> _R | None:
        try:
            rec = cls.decode(msg.value)
        except CodecError as exc:
            await self._dead_letter(msg, str(exc))
            return None
        agent_id = key_of(rec)
        if self.partition_of(agent_id) != msg.partition:
            await self._dead_letter(
                msg,
                f"{cls.RECORD_TYPE} for {agent_id!r} in partition {msg.partition}, expected "
                f"{self.partition_of(agent_id)}: key it by agent id, murmur2 partitioner",
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
        await self._send(self.topics.dead_letter, msg.key or b"", record.encode(), 0)
        self.metrics.dead_letters.labels(topic=msg.topic).inc()

    async def _on_event(self, ev: TaskEvent, partition: int) -> None:
        old = self.table.get(ev.agent_id)
        res = apply_event(old, ev, partition)
        if res.record is not old:
            self._store(ev.agent_id, res.record)
        if res.rejected:
            self.metrics.rejected.labels(reason=res.rejected).inc()
        if res.to_dispatch:
            # Released tasks (graceful hand-off) and late claims move now, not at the next tick.
            slots = [res.record.tasks[t] for t in res.to_dispatch]
            await self.dispatch(res.record, slots, None, time.monotonic())

    async def _on_redispatch(self, rd: Redispatch, partition: int) -> None:
        old = self.table.get(rd.target_agent_id)
        res = apply_redispatch(old, rd, partition)
        if res.record is not old:
            self._store(rd.target_agent_id, res.record)
        if res.rejected:
            self.metrics.rejected.labels(reason=res.rejected).inc()
        if res.to_dispatch:
            slots = [res.record.tasks[t] for t in res.to_dispatch]
            await self.dispatch(res.record, slots, None, time.monotonic())

    async def _on_control(self, ctl: Control, partition: int) -> None:
        if ctl.kind not in (ControlKind.FENCE, ControlKind.DISPATCH):
            return  # drain / promote are for agents
        res = apply_control(self.table.get(ctl.agent_id), ctl, partition, time.time())
        if res.duplicate:
            self.metrics.duplicates.inc()
            return
        acks = []
        for rd in res.redispatches:
            target = rd.target_agent_id
            acks.append(
                await self._send(
                    self.topics.priority, target.encode(), rd.encode(), self.partition_of(target)
                )
            )
        if res.failover is not None:
            acks.append(
                await self._send(
                    self.topics.failovers, ctl.agent_id.encode(), res.failover.encode(), 0
                )
            )
        # Only once every re-dispatch is acknowledged is the decision recorded as applied.
        await asyncio.gather(*acks)
        self._store(ctl.agent_id, res.record)
        self.metrics.redispatched.inc(len(res.redispatches))
        self.metrics.apply_seconds.observe(max(0.0, time.time() - ctl.issued_at))
        log.info(
            "applied %s %s of %s epoch %d: %d re-dispatched",
            ctl.kind.value,
            ctl.decision_id,
            ctl.agent_id,
            ctl.epoch,
            len(res.redispatches),
        )
