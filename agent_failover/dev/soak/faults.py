"""Firing the schedule's faults at the fleet: signals, at the scheduled moments, on record.

A fault fires at its scheduled time once its targets can take it: enough agents running (not
exited, not frozen) that have announced their epoch, or the monitor worker it names. Among the
agents, in the fault's seeded slot order, it takes those holding work, waiting up to
:data:`BUSY_WAIT` seconds for enough of them so that the fault moves tasks, then any that are up.
A fault whose targets are not up within :data:`READY_WAIT` seconds is skipped and said so.
Follow-ups (the SIGCONT after a freeze, the monitor kill after an agent kill) are scheduled when
the fault fires.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import signal
import time
from collections.abc import Callable

from agent_failover.dev.soak.fleet import Fleet, ProcessRecord
from agent_failover.dev.soak.schedule import Fault, FaultKind
from agent_failover.dev.soak.watch import Watch
from agent_failover.partitioner import partition_for

#: Seconds a fault waits for its targets to be up (a replacement starting, a monitor restarting).
READY_WAIT = 30.0
#: Seconds a fault on agents waits for one of them to hold a task.
BUSY_WAIT = 3.0
#: Seconds between two looks at a fault that is waiting.
RETRY = 0.1

#: An action returns None when done, or the seconds after which to try it again.
Action = Callable[[], float | None]


@dataclasses.dataclass
class FaultRecord:
    """What became of one scheduled fault: when it fired, whom it hit, or why it was skipped."""

    index: int
    kind: str
    scheduled: float  # seconds after the fleet was ready
    fired_at: float | None = None  # wall clock
    targets: list[str] = dataclasses.field(default_factory=list)
    skipped: str | None = None


class Injector:
    """The schedule's faults and their follow-ups, due at monotonic times from ``t0``."""

    def __init__(
        self,
        fleet: Fleet,
        watch: Watch,
        faults: tuple[Fault, ...],
        t0: float,
        partitions: int,
        say: Callable[[str], None],
    ) -> None:
        self.fleet = fleet
        self.t0 = t0
        self.say = say
        self.watch = watch
        self.partitions = partitions
        self.records = [FaultRecord(f.index, f.kind.value, f.at) for f in faults]
        self._heap: list[tuple[float, int, Action]] = []
        self._seq = itertools.count()
        for fault in faults:
            self._push(t0 + fault.at, self._firing(fault, t0 + fault.at))

    def _say(self, text: str) -> None:
        self.say(f"  +{time.monotonic() - self.t0:6.1f}s  {text}")

    def _push(self, due: float, action: Action) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), action))

    @property
    def pending(self) -> bool:
        """Whether a fault or a follow-up is still to come."""
        return bool(self._heap)

    def run_due(self) -> None:
        """Run every action that is due (from the fleet's thread)."""
        now = time.monotonic()
        while self._heap and self._heap[0][0] <= now:
            _, _, action = heapq.heappop(self._heap)
            again = action()
            if again is not None:
                self._push(now + again, action)

    # --- firing -------------------------------------------------------------------------------

    def _firing(self, fault: Fault, due: float) -> Action:
        record = self.records[fault.index]

        def fire() -> float | None:
            waited = time.monotonic() - due
            agents = self._targets(fault, busy_only=waited < BUSY_WAIT)
            if agents is None or not self._monitor_up(fault):
                if waited < READY_WAIT:
                    return RETRY
                record.skipped = f"targets not up within {READY_WAIT:g} s"
                self._say(f"fault {fault.index} {fault.kind}: skipped, {record.skipped}")
                return None
            record.fired_at = time.time()
            self._fire(fault, record, agents)
            return None

        return fire

    def _targets(self, fault: Fault, *, busy_only: bool) -> list[ProcessRecord] | None:
        """The agents to hit, in the fault's slot order: those holding work first (only those
        while ``busy_only``); None if not enough are up."""
        up = []
        for slot in fault.slots:
            agent = self.fleet.agent(slot)
            if self.fleet.running(agent) and self.watch.started_since(
                agent.agent_id or "", agent.spawned_at
            ):
                up.append(agent)
        busy = [a for a in up if self.watch.holds_work(a.agent_id or "")]
        chosen = (busy + ([] if busy_only else [a for a in up if a not in busy]))[: fault.hits]
        return chosen if len(chosen) == fault.hits else None

    def _monitor_up(self, fault: Fault) -> bool:
        if fault.kind is not FaultKind.MONITOR_KILL:
            return True
        assert fault.monitor is not None
        return self.fleet.running(self.fleet.monitor(fault.monitor))

    def _fire(self, fault: Fault, record: FaultRecord, agents: list[ProcessRecord]) -> None:
        kind = fault.kind
        if kind in (FaultKind.KILL, FaultKind.KILL_TWO, FaultKind.KILL_THEN_MONITOR):
            self._signal(record, agents, signal.SIGKILL)
        elif kind is FaultKind.TERM:
            self._signal(record, agents, signal.SIGTERM)
        elif kind is FaultKind.FREEZE:
            self._signal(record, agents, signal.SIGSTOP)
            self._later(fault.pause, lambda: self._signal(record, agents, signal.SIGCONT))
        elif kind is FaultKind.MONITOR_KILL:
            assert fault.monitor is not None
            self._kill_monitor(record, fault, fault.monitor)
        if kind is FaultKind.KILL_THEN_MONITOR:
            # The worker that must notice this agent's death, if the fleet summaries tell it.
            owner = self.watch.owner_pid(partition_for(agents[0].agent_id or "", self.partitions))
            slot = self.fleet.monitor_slot_of(owner) if owner is not None else None
            chosen = fault.monitor if slot is None else slot
            assert chosen is not None
            self._later(fault.pause, lambda: self._kill_monitor(record, fault, chosen))

    def _later(self, seconds: float, then: Callable[[], None]) -> None:
        def action() -> None:
            then()

        self._push(time.monotonic() + seconds, action)

    def _signal(
        self, record: FaultRecord, targets: list[ProcessRecord], sig: signal.Signals
    ) -> None:
        for target in targets:
            if self.fleet.signal(target, sig, record.index):
                self._hit(record, f"{sig.name} {target.name} (pid {target.pid})")

    def _hit(self, record: FaultRecord, what: str) -> None:
        record.targets.append(what)
        self._say(f"fault {record.index} {record.kind}: {what}")

    def _kill_monitor(self, record: FaultRecord, fault: Fault, slot: int) -> None:
        killed = self.fleet.kill_monitor(slot, fault.index, fault.restart_after)
        if killed is not None:
            self._hit(record, f"SIGKILL {killed.name} (pid {killed.pid})")
        else:
            self._hit(record, f"monitor-{slot + 1} had already exited")
