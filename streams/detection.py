"""Failure detection: pure functions of the table, the liveness map and the monitor's clock.

Nothing here touches Kafka or reads a clock: ``now`` is the monitor's ``time.monotonic()`` and is
passed in, so every rule is unit-tested with plain numbers.
"""

from __future__ import annotations

import dataclasses
import enum

from agent_failover.config import MonitorConfig, interval_problem
from agent_failover.models import DispatchReason
from agent_failover.streams.state import AgentRecord, LiveEntry, SlotStatus


class Health(enum.StrEnum):
    """Health of an agent's newest epoch."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"  # heartbeats late, not yet failed
    FAILED = "failed"
    STOPPED = "stopped"  # said agent_stopped, or fenced: no longer part of the fleet
    UNKNOWN = "unknown"  # not heard since this worker took over, and not overdue yet


@dataclasses.dataclass(frozen=True, slots=True)
class DetectionPolicy:
    """The timing rules of detection, in seconds of the monitor's clock."""

    heartbeat_timeout: float
    degraded_after: float
    grace_period: float

    @classmethod
    def from_config(cls, config: MonitorConfig) -> DetectionPolicy:
        """The policy a :class:`MonitorConfig` describes."""
        return cls(
            heartbeat_timeout=config.heartbeat_timeout,
            degraded_after=config.effective_degraded_after,
            grace_period=config.effective_grace_period,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class DeadEpoch:
    """An epoch detection declares dead, and why."""

    agent_id: str
    epoch: int
    reason: DispatchReason
    last_heartbeat_age_s: float | None = None
    detail: str | None = None  # why, for the agent's operator (a refused configuration)


#: An agent is degraded once a heartbeat is this many of its own intervals late.
MISSED_INTERVALS = 1.5


def degraded_after(policy: DetectionPolicy, interval: float = 0.0) -> float:
    """Heartbeat age at which an agent with heartbeat ``interval`` counts as degraded.

    At least ``policy.degraded_after``, and never before a heartbeat is overdue: an agent whose
    interval is close to that setting would otherwise flap between healthy and degraded between
    two punctual heartbeats (and be skipped as a failover target). Never beyond the timeout.
    """
    late = MISSED_INTERVALS * interval
    if late <= policy.degraded_after:
        return policy.degraded_after
    return min(late, policy.heartbeat_timeout)


def classify(age: float, policy: DetectionPolicy, interval: float = 0.0) -> Health:
    """Health for a heartbeat ``age`` seconds old from an agent beating every ``interval``."""
    if age >= policy.heartbeat_timeout:
        return Health.FAILED
    if age >= degraded_after(policy, interval):
        return Health.DEGRADED
    return Health.HEALTHY


def misconfigured(live: LiveEntry, policy: DetectionPolicy) -> str | None:
    """Why an agent's heartbeat settings cannot work with this monitor, or None if they can.

    Its interval must leave room for a late heartbeat within the timeout, and the timeout its
    lease assumes must not exceed the monitor's: an agent counting on a longer one would act
    while already fenced.
    """
    timeout = policy.heartbeat_timeout
    problem = interval_problem(live.interval_s, timeout)
    if problem is None and live.timeout_s is not None and live.timeout_s > timeout:
        problem = (
            f"the agent assumes a heartbeat timeout of {live.timeout_s:g} s but the monitor "
            f"fails agents after {timeout:g} s: set AGENT_FAILOVER_HEARTBEAT_TIMEOUT to the "
            "same value for agents and monitor"
        )
    return None if problem is None else f"{problem} (agent {live.agent_id})"


def heartbeat_age(
    epoch: int,
    live: LiveEntry | None,
    now: float,
    owned_since: float,
    policy: DetectionPolicy,
    known_since: float | None = None,
) -> tuple[float, bool]:
    """Seconds ``epoch`` counts as silent, and whether this worker heard a heartbeat from it.

    Ageing starts at the latest of: the last heartbeat heard; ``owned_since + grace_period``
    (when this worker took over the partition, or resumed after a stall, with its heartbeat
    reader caught up: a live agent is heard within its interval from then, so an epoch never
    heard counts as silent from there, never from before this worker arrived); and, for an epoch
    not heard yet, ``known_since`` (when this worker learned of it, e.g. from ``agent_started``:
    a new agent has a whole timeout to deliver its first heartbeat).
    """
    start = owned_since + policy.grace_period
    if live is not None and live.epoch == epoch:
        return now - max(live.last_seen, start), True
    if known_since is not None:
        start = max(start, known_since)
    return now - start, False


def health_of(
    record: AgentRecord | None,
    live: LiveEntry | None,
    now: float,
    owned_since: float,
    policy: DetectionPolicy,
    known_since: dict[int, float] | None = None,
) -> Health:
    """Health of an agent id's newest epoch (for metrics and for choosing targets).

    An epoch not heard since this worker took over is ``UNKNOWN`` until it is overdue (it ages
    like a silent one, see :func:`heartbeat_age`).
    """
    epochs = [e for e in (record.epoch if record else None, live.epoch if live else None) if e]
    if not epochs:
        return Health.UNKNOWN
    newest = max(epochs)
    if record is not None and (newest in record.stopped or record.is_fenced(newest)):
        return Health.STOPPED
    known = (known_since or {}).get(newest)
    age, seen = heartbeat_age(newest, live, now, owned_since, policy, known)
    if not seen:
        return Health.UNKNOWN if age < policy.degraded_after else classify(age, policy)
    return classify(age, policy, live.interval_s if live is not None else 0.0)


def dead_epochs(
    record: AgentRecord | None,
    live: LiveEntry | None,
    now: float,
    owned_since: float,
    policy: DetectionPolicy,
    known_since: dict[int, float] | None = None,
) -> list[DeadEpoch]:
    """The open epochs of one agent id that must be fenced now, oldest first.

    - an older epoch that is still open (superseded by ``agent_started``, holding tasks, or still
      heartbeating) once a newer one exists: ``restarted``, at once;
    - a stopped epoch that still holds tasks (it did not release them): ``stopped``, at once;
    - the newest epoch silent for ``heartbeat_timeout``: ``heartbeat_timeout``, silence counted
      as :func:`heartbeat_age` says (never from before ``owned_since + grace_period``, and for an
      epoch never heard from, not from before ``known_since[epoch]``, the monitor's time it
      learned of the epoch);
    - the newest epoch whose heartbeats say its settings cannot work with this monitor
      (:func:`misconfigured`): ``misconfigured``, at once, with the reason as ``detail``.

    Fenced epochs are never returned again; the caller also keeps decisions already written but
    not yet applied out of the way.
    """
    agent_id = record.agent_id if record is not None else (live.agent_id if live else None)
    if agent_id is None:
        return []
    holding: set[int] = set()
    open_epochs: set[int] = set()
    if record is not None:
        holding = {s.epoch for s in record.tasks.values() if s.status is SlotStatus.OWNED}
        open_epochs |= holding | set(record.superseded)
        if record.epoch is not None:
            open_epochs.add(record.epoch)
    if live is not None:
        open_epochs.add(live.epoch)
    # A record may hold tasks for an epoch it has no agent_started of yet (a re-dispatch to it
    # was processed first: the topics are read in no particular order): that epoch counts too.
    evidenced = {e for e in (record.epoch if record else None, live.epoch if live else None) if e}
    if not evidenced and not holding:
        return []
    newest = max(evidenced or holding)
    out: list[DeadEpoch] = []
    for epoch in sorted(open_epochs):
        if record is not None and record.is_fenced(epoch):
            continue
        live_age = now - live.last_seen if live is not None and live.epoch == epoch else None
        if record is not None and epoch in record.stopped:
            if epoch in holding:
                out.append(DeadEpoch(agent_id, epoch, DispatchReason.STOPPED, live_age))
            continue
        if epoch < newest:
            out.append(DeadEpoch(agent_id, epoch, DispatchReason.RESTARTED, live_age))
            continue
        if live is not None and live.epoch == epoch and (why := misconfigured(live, policy)):
            out.append(DeadEpoch(agent_id, epoch, DispatchReason.MISCONFIGURED, live_age, why))
            continue
        known = (known_since or {}).get(epoch)
        age, _ = heartbeat_age(epoch, live, now, owned_since, policy, known)
        if age >= policy.heartbeat_timeout:
            out.append(DeadEpoch(agent_id, epoch, DispatchReason.HEARTBEAT_TIMEOUT, live_age))
    return out


def timeout_at(
    record: AgentRecord | None,
    live: LiveEntry | None,
    owned_since: float,
    policy: DetectionPolicy,
    known_since: dict[int, float] | None = None,
) -> float | None:
    """The monitor time from which :func:`dead_epochs` fails the newest epoch for
    ``heartbeat_timeout`` if neither the record nor the heartbeat changes; ``None`` if it never
    would (no epoch yet, or the newest epoch is stopped or fenced).

    Lets the monitor leave an agent alone until then instead of asking :func:`dead_epochs` every
    tick: before this time only a change (a table write, a new epoch) can make it fence.
    """
    epochs = [e for e in (record.epoch if record else None, live.epoch if live else None)]
    known_epochs = [e for e in epochs if e is not None]
    if not known_epochs:
        return None
    newest = max(known_epochs)
    if record is not None and (newest in record.stopped or record.is_fenced(newest)):
        return None
    start = owned_since + policy.grace_period
    if live is not None and live.epoch == newest:
        start = max(start, live.last_seen)
    else:
        known = (known_since or {}).get(newest)
        if known is not None:
            start = max(start, known)
    return start + policy.heartbeat_timeout
