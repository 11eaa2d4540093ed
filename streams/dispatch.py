"""Planning where tasks go, and applying control decisions to the table: pure functions.

Planning runs in the detection timer (and in the events handler for released tasks), and in the
intake for new work (:func:`choose_new`); applying runs in the faust agent that consumes
``control``. Applying is deterministic and the first
decision wins: the first ``fence`` for an epoch and the first placed plan entry for a
``(task_id, attempt)`` are applied, later duplicates change nothing (see docs/protocol.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping, Sequence

from agent_failover.config import MAX_INTERVAL_SHARE
from agent_failover.models import (
    Control,
    ControlKind,
    DispatchReason,
    Failover,
    MovedTask,
    PlanEntry,
    Pool,
    Redispatch,
)
from agent_failover.streams.detection import DetectionPolicy, degraded_after
from agent_failover.streams.state import (
    KEEP_DECIDED,
    KEEP_FENCED,
    AgentRecord,
    FencedEpoch,
    LiveEntry,
    SlotStatus,
    TaskSlot,
    bounded,
)

AgentEpoch = tuple[str, int]


@dataclasses.dataclass(frozen=True, slots=True)
class Candidate:
    """A healthy agent epoch that may receive tasks, with its current load."""

    agent_id: str
    epoch: int
    pool: Pool
    capacity: int
    in_flight: int

    @property
    def key(self) -> AgentEpoch:
        """``(agent_id, epoch)``."""
        return (self.agent_id, self.epoch)


def load_of(record: AgentRecord | None, live: LiveEntry) -> int:
    """The tasks ``live``'s epoch holds: those its record gives it (a heartbeat lags a dispatch)
    and those its newest heartbeat lists, minus those the record shows finished since (a
    completion frees its slot at once, not at the next heartbeat)."""
    if record is None or not record.tasks:  # most agents hold nothing: no sets for them
        if not live.in_flight:
            return 0
        held: set[str] = set()
    else:
        held = {
            s.task_id
            for s in record.tasks.values()
            if s.epoch == live.epoch and s.status is not SlotStatus.QUEUED
        }
    extra = [t for t in live.in_flight if t not in held]
    if extra and record is not None and record.done:
        done = {t for t, _ in record.done}
        extra = [t for t in extra if t not in done]
    return len(held) + len(extra)


def candidates(
    lives: Iterable[LiveEntry],
    records: Mapping[str, AgentRecord],
    now: float,
    policy: DetectionPolicy,
) -> list[Candidate]:
    """Agent epochs that can take work: healthy (monitor clock), not draining, not stopped,
    not fenced, not superseded; each with its load (:func:`load_of`)."""
    out: list[Candidate] = []
    # classify(age) is HEALTHY exactly below degraded_after(); compared inline because this runs
    # for every owned agent twice a second (the fleet summary).
    healthy_below = min(policy.degraded_after, policy.heartbeat_timeout)
    longest_interval = policy.heartbeat_timeout * MAX_INTERVAL_SHARE
    for live in lives:
        if live.draining:
            continue
        if live.interval_s > longest_interval or (
            live.timeout_s is not None and live.timeout_s > policy.heartbeat_timeout
        ):
            continue  # refused (detection fences it): never a target
        age = now - live.last_seen
        if age >= healthy_below and age >= degraded_after(policy, live.interval_s):
            continue
        record = records.get(live.agent_id)
        if record is not None:
            # Tested for emptiness first: a call per agent was a tenth of a summary's cost.
            if (record.fenced and record.is_fenced(live.epoch)) or (
                record.stopped and live.epoch in record.stopped
            ):
                continue
            if record.epoch is not None and live.epoch < record.epoch:
                continue
        load = load_of(record, live) if record is not None or live.in_flight else 0
        out.append(Candidate(live.agent_id, live.epoch, live.pool, live.capacity, load))
    return out


def _least_loaded(free: Iterable[Candidate], load: Mapping[AgentEpoch, int]) -> Candidate | None:
    """The candidate with the lowest share of its capacity in use; ties: fewer tasks, agent id."""
    return min(
        free,
        key=lambda c: (load[c.key] / c.capacity, load[c.key], c.agent_id, c.epoch),
        default=None,
    )


def choose_new(
    pool: Sequence[Candidate], reserved: Mapping[AgentEpoch, int] | None = None
) -> Candidate | None:
    """Where new work goes: the least-loaded ACTIVE agent with a free slot (capacity - in flight
    - ``reserved``), ties broken on agent id (what :func:`plan_moves` would pick among active
    agents); None if none has one. Standbys never get new work: they are kept free for
    failovers.

    One pass, no key tuple per agent: it runs for every task placed, over the whole pool.
    """
    by_agent: dict[str, dict[int, int]] = {}
    for (agent_id, epoch), n in (reserved or {}).items():
        by_agent.setdefault(agent_id, {})[epoch] = n
    best: Candidate | None = None
    best_share = best_load = 0.0
    for c in pool:
        if c.pool is not Pool.ACTIVE:
            continue
        load = c.in_flight
        if by_agent and (mine := by_agent.get(c.agent_id)) is not None:
            load += mine.get(c.epoch, 0)
        if c.capacity - load <= 0:
            continue
        share = load / c.capacity
        if (
            best is None
            or share < best_share
            or (
                share == best_share
                and (load, c.agent_id, c.epoch) < (best_load, best.agent_id, best.epoch)
            )
        ):
            best, best_share, best_load = c, share, load
    return best


def free_by_pool(
    pool: Sequence[Candidate], reserved: Mapping[AgentEpoch, int] | None = None
) -> dict[Pool, int]:
    """Free slots of the agents of ``pool`` by their pool: capacity minus tasks held or placed
    there (``reserved``)."""
    reserved = reserved or {}
    free = dict.fromkeys(Pool, 0)
    for c in pool:
        free[c.pool] += max(0, c.capacity - c.in_flight - reserved.get(c.key, 0))
    return free


def free_slots(pool: Sequence[Candidate], reserved: Mapping[AgentEpoch, int] | None = None) -> int:
    """Free slots of the ACTIVE agents of ``pool`` (what new work could use now)."""
    return free_by_pool(pool, reserved)[Pool.ACTIVE]


def plan_moves(
    slots: Sequence[TaskSlot],
    pool: Sequence[Candidate],
    *,
    exclude: Collection[AgentEpoch] = (),
    reserved: Mapping[AgentEpoch, int] | None = None,
) -> tuple[PlanEntry, ...]:
    """One plan entry per slot, in task id order: attempt + 1, resume from the slot's checkpoint.

    Target: a ready standby with free capacity first, else the least-loaded healthy agent with
    free capacity (capacity - in flight - ``reserved`` - already planned here), else none (the
    task stays queued). Ties break on agent id so plans are reproducible.
    """
    if not slots:  # most fences move nothing: do not walk the whole pool for them
        return ()
    load = {c.key: c.in_flight + (reserved or {}).get(c.key, 0) for c in pool}
    entries: list[PlanEntry] = []
    for slot in sorted(slots, key=lambda s: s.task_id):
        free = [c for c in pool if c.key not in exclude and c.capacity - load[c.key] > 0]
        standby = [c for c in free if c.pool is Pool.STANDBY]
        choice = _least_loaded(standby or free, load)
        if choice is None:
            entries.append(PlanEntry(slot.task_id, slot.attempt + 1, checkpoint=slot.checkpoint))
            continue
        load[choice.key] += 1
        entries.append(
            PlanEntry(
                slot.task_id,
                slot.attempt + 1,
                target_agent_id=choice.agent_id,
                target_epoch=choice.epoch,
                checkpoint=slot.checkpoint,
            )
        )
    return tuple(entries)


@dataclasses.dataclass(frozen=True, slots=True)
class ApplyResult:
    """What applying a control record does: records to send (and await), then the new state.

    The caller sends ``redispatches`` and ``failover`` and awaits their acknowledgements BEFORE
    writing ``record`` to the table, so a crash in between re-applies the decision and re-sends
    identical records (receivers de-duplicate) instead of losing them.
    """

    record: AgentRecord
    redispatches: tuple[Redispatch, ...] = ()
    failover: Failover | None = None
    duplicate: bool = False


def _movable(record: AgentRecord, slot: TaskSlot | None, entry: PlanEntry) -> bool:
    if slot is None or slot.attempt != entry.attempt - 1:
        return False
    return not record.is_decided(entry.task_id, entry.attempt)


def _redispatch(ctl: Control, slot: TaskSlot, entry: PlanEntry) -> Redispatch:
    assert entry.target_agent_id is not None and entry.target_epoch is not None
    return Redispatch(
        task=slot.task,
        attempt=entry.attempt,
        target_agent_id=entry.target_agent_id,
        target_epoch=entry.target_epoch,
        reason=ctl.reason or slot.reason or DispatchReason.QUEUED,
        from_agent_id=ctl.agent_id,
        from_epoch=slot.epoch,
        decision_id=ctl.decision_id,
        # The decision's time, not the wall clock: a re-apply after a crash sends identical bytes.
        dispatched_at=ctl.issued_at,
        checkpoint=entry.checkpoint,
        last_heartbeat_age_s=ctl.last_heartbeat_age_s,
    )


def apply_control(
    record: AgentRecord | None, ctl: Control, partition: int, now: float
) -> ApplyResult:
    """Apply a ``fence`` or ``dispatch`` decision to the agent's record (``now``: wall clock,
    for the audit record only). Other kinds (drain, promote) are for agents and change nothing."""
    rec = record if record is not None else AgentRecord(ctl.agent_id, partition)
    if ctl.kind is ControlKind.FENCE:
        if rec.is_fenced(ctl.epoch):
            return ApplyResult(rec, duplicate=True)
        return _apply(rec, ctl, now, fence=True)
    if ctl.kind is ControlKind.DISPATCH:
        return _apply(rec, ctl, now, fence=False)
    return ApplyResult(rec, duplicate=True)


def _apply(rec: AgentRecord, ctl: Control, now: float, *, fence: bool) -> ApplyResult:
    tasks = dict(rec.tasks)
    decided = list(rec.decided)
    sends: list[Redispatch] = []
    moved: list[MovedTask] = []
    queued: list[str] = []
    reason = ctl.reason or (DispatchReason.HEARTBEAT_TIMEOUT if fence else DispatchReason.QUEUED)
    for entry in ctl.plan:
        slot = tasks.get(entry.task_id)
        if slot is None or not _movable(rec, slot, entry):
            continue
        if fence:
            ok = slot.epoch == ctl.epoch and slot.status is not SlotStatus.QUEUED
        else:
            ok = slot.status is SlotStatus.QUEUED
        if not ok:
            continue
        if entry.target_agent_id is None:
            if fence:  # unplaced: the task waits in the queue for a healthy agent
                tasks[slot.task_id] = dataclasses.replace(
                    slot, status=SlotStatus.QUEUED, reason=reason
                )
                queued.append(slot.task_id)
            continue
        sends.append(_redispatch(ctl, slot, entry))
        moved.append(
            MovedTask(
                entry.task_id,
                entry.attempt,
                entry.target_agent_id,
                entry.checkpoint.step if entry.checkpoint else None,
            )
        )
        decided.append((entry.task_id, entry.attempt))
        del tasks[slot.task_id]
    fenced = rec.fenced
    superseded = rec.superseded
    if fence:
        # Tasks the epoch got after the plan was made (a dispatch in flight) move too: queue
        # them for the next dispatch.
        for slot in rec.slots_of(ctl.epoch):
            if slot.task_id in tasks and slot.status is SlotStatus.OWNED:
                tasks[slot.task_id] = dataclasses.replace(
                    slot, status=SlotStatus.QUEUED, reason=reason
                )
                queued.append(slot.task_id)
        applied = FencedEpoch(ctl.epoch, ctl.decision_id, ctl.issued_at, ctl.last_heartbeat_age_s)
        fenced = bounded((*fenced, applied), KEEP_FENCED)
        superseded = tuple(e for e in superseded if e != ctl.epoch)
    elif not sends:
        return ApplyResult(rec, duplicate=True)
    new = dataclasses.replace(
        rec,
        tasks=tasks,
        decided=bounded(decided, KEEP_DECIDED),
        fenced=fenced,
        superseded=superseded,
    )
    audit = Failover(
        agent_id=ctl.agent_id,
        epoch=ctl.epoch,
        decision_id=ctl.decision_id,
        reason=reason,
        decided_at=ctl.issued_at,
        applied_at=now,
        moved=tuple(moved),
        queued=tuple(sorted(set(queued))),
        last_heartbeat_age_s=ctl.last_heartbeat_age_s,
        monitor_id=ctl.monitor_id,
    )
    return ApplyResult(new, tuple(sends), audit)
