"""The seeded schedule of a soak: the fleet, the waves of tasks and the faults, decided up front.

Everything is drawn from the seed before anything runs, so the same seed gives the same schedule:
the same tasks in the same waves, the same faults of the same kinds at the same moments (seconds
after the fleet is ready) on the same slots, and the same choice, for every replacement process,
between the old agent id and a new one. What a run does with it still depends on timing (which
tasks a killed agent held, how fast detection was): that is what the soak measures.

Agents live in numbered *slots*, like the replicas of a Deployment: a fault names a slot, and
whatever process fills that slot then is hit; every agent process that stops is replaced in its
slot by a new one (a new epoch).
"""

from __future__ import annotations

import dataclasses
import enum
import random
from typing import Any


class FaultKind(enum.StrEnum):
    """What a fault does."""

    KILL = "kill"  # SIGKILL an agent
    FREEZE = "freeze"  # SIGSTOP an agent past the heartbeat timeout, then SIGCONT: a zombie
    TERM = "term"  # SIGTERM an agent: a graceful stop
    KILL_TWO = "kill_two"  # SIGKILL two agents at once
    MONITOR_KILL = "monitor_kill"  # SIGKILL a monitor worker; it is restarted
    KILL_THEN_MONITOR = "kill_then_monitor"  # SIGKILL an agent, then within 1 s a monitor worker


#: How often each kind is drawn for the faults beyond one of each (full profile).
_WEIGHTS = {
    FaultKind.KILL: 3,
    FaultKind.FREEZE: 2,
    FaultKind.TERM: 2,
    FaultKind.KILL_TWO: 1,
    FaultKind.MONITOR_KILL: 1,
    FaultKind.KILL_THEN_MONITOR: 1,
}

#: Monitor workers in every soak.
MONITORS = 2


@dataclasses.dataclass(frozen=True)
class Profile:
    """The size of a soak: fleet, tasks, faults and timings (seconds)."""

    name: str
    agents: int
    tasks: int
    waves: int
    wave_every: float
    steps: tuple[int, int]
    faults: int
    first_fault: float
    fault_gap: tuple[float, float]
    drain_timeout: float
    capacity: tuple[int, int] = (2, 4)
    step_seconds: tuple[float, float] = (0.1, 0.5)
    heartbeat_interval: float = 0.5
    heartbeat_timeout: float = 3.0
    #: The graceful stop's wait for a running step (AGENT_FAILOVER_HANDOFF_WAIT), drawn per process.
    handoff_waits: tuple[float, ...] = (0.0, 1.0)

    def __post_init__(self) -> None:
        if self.agents < 2:
            raise ValueError("a soak needs at least 2 agents (one fault kills two)")
        if self.faults < len(FaultKind):
            raise ValueError(f"a soak injects at least one fault of each of {len(FaultKind)} kinds")
        if not 1 <= self.waves <= self.tasks:
            raise ValueError("need 1 <= waves <= tasks")


PROFILES = {
    # ~60-90 s on a quiet 2-core box: one fault of each kind.
    "quick": Profile(
        name="quick",
        agents=4,
        tasks=28,
        waves=4,
        wave_every=9.0,
        steps=(25, 40),
        faults=len(FaultKind),
        first_fault=3.0,
        fault_gap=(5.0, 7.0),
        drain_timeout=60.0,
    ),
    # A few minutes: every kind at least once, more faults drawn by weight.
    "full": Profile(
        name="full",
        agents=4,
        tasks=56,
        waves=8,
        wave_every=17.0,
        steps=(25, 50),
        faults=15,
        first_fault=4.0,
        fault_gap=(7.0, 11.0),
        drain_timeout=90.0,
    ),
}


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One task to submit: its id and how many steps it has."""

    task_id: str
    steps: int


@dataclasses.dataclass(frozen=True)
class Wave:
    """Tasks submitted together, ``at`` seconds after the fleet is ready."""

    at: float
    tasks: tuple[TaskSpec, ...]


@dataclasses.dataclass(frozen=True)
class Fault:
    """One fault, ``at`` seconds after the fleet is ready.

    ``hits`` agents are hit (two for ``kill_two``, none for ``monitor_kill``), chosen in the
    order of ``slots`` (every agent slot, in a seeded order): the first ones holding work when
    the fault fires, else the first ones up. ``monitor``: the monitor slot hit
    (``kill_then_monitor`` hits the worker that owns the killed agent's partition when it can
    tell, this slot otherwise); ``pause``: seconds frozen (``freeze``) or between the two kills
    (``kill_then_monitor``); ``restart_after``: seconds before a killed monitor worker is
    started again.
    """

    index: int
    at: float
    kind: FaultKind
    hits: int = 0
    slots: tuple[int, ...] = ()
    monitor: int | None = None
    pause: float = 0.0
    restart_after: float = 0.0


@dataclasses.dataclass(frozen=True)
class Replacement:
    """How a slot's next agent process is started: its id is kept or new, its handoff wait."""

    keep_id: bool
    handoff_wait: float


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Everything a soak will do, drawn from ``seed``."""

    seed: int
    profile: Profile
    capacities: tuple[int, ...]
    waves: tuple[Wave, ...]
    faults: tuple[Fault, ...]

    def task_steps(self) -> dict[str, int]:
        """Task id -> steps, for every task of every wave."""
        return {t.task_id: t.steps for w in self.waves for t in w.tasks}

    def process(self, slot: int, generation: int) -> Replacement:
        """How the ``generation``-th process of agent ``slot`` starts (0: the first, own id).

        Drawn from the seed, the slot and the generation alone, so the order in which slots
        happen to be replaced during a run does not change the choice.
        """
        rng = random.Random(f"{self.seed}/agent/{slot}/{generation}")
        keep = generation == 0 or rng.random() < 0.5
        return Replacement(keep_id=keep, handoff_wait=rng.choice(self.profile.handoff_waits))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy (for the result file)."""
        return dataclasses.asdict(self)


def build_schedule(seed: int, profile: Profile) -> Schedule:
    """The schedule of ``seed``: pure, the same for the same seed and profile."""
    rng = random.Random(seed)
    capacities = tuple(rng.randint(*profile.capacity) for _ in range(profile.agents))
    specs = [
        TaskSpec(f"task-{i + 1:03d}", rng.randint(*profile.steps)) for i in range(profile.tasks)
    ]
    per_wave = -(-profile.tasks // profile.waves)  # ceiling: the last wave may be smaller
    waves = tuple(
        Wave(at=i * profile.wave_every, tasks=tuple(specs[i * per_wave : (i + 1) * per_wave]))
        for i in range(profile.waves)
        if specs[i * per_wave : (i + 1) * per_wave]
    )
    kinds = list(FaultKind)
    extra = profile.faults - len(kinds)
    kinds += rng.choices(list(_WEIGHTS), weights=list(_WEIGHTS.values()), k=extra)
    rng.shuffle(kinds)
    faults = []
    at = profile.first_fault
    for index, kind in enumerate(kinds):
        faults.append(_fault(rng, profile, index, at, kind))
        at += rng.uniform(*profile.fault_gap)
    return Schedule(
        seed=seed, profile=profile, capacities=capacities, waves=waves, faults=tuple(faults)
    )


def _fault(rng: random.Random, profile: Profile, index: int, at: float, kind: FaultKind) -> Fault:
    at = round(at, 2)
    if kind is FaultKind.MONITOR_KILL:
        restart = round(rng.uniform(0.5, 3.0), 2)
        return Fault(index, at, kind, monitor=rng.randrange(MONITORS), restart_after=restart)
    slots = tuple(rng.sample(range(profile.agents), profile.agents))
    hits = 2 if kind is FaultKind.KILL_TWO else 1
    if kind is FaultKind.FREEZE:
        # Frozen well past the timeout, so that the monitor fences it while it cannot see that.
        pause = round(profile.heartbeat_timeout + rng.uniform(1.0, 3.0), 2)
        return Fault(index, at, kind, hits, slots, pause=pause)
    if kind is FaultKind.KILL_THEN_MONITOR:
        return Fault(
            index,
            at,
            kind,
            hits,
            slots,
            monitor=rng.randrange(MONITORS),
            pause=round(rng.uniform(0.1, 0.9), 2),
            restart_after=round(rng.uniform(0.5, 3.0), 2),
        )
    return Fault(index, at, kind, hits, slots)
