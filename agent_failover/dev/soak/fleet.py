"""The soak's processes: monitor workers and agents in slots, signalled, replaced, on record.

Like a Deployment, the fleet keeps every slot filled: an agent process that exits (killed,
stopped, fenced) is replaced at once by a new process in its slot (a new epoch; the schedule says
whether it keeps the old agent id), and a killed monitor worker is started again after the pause
the schedule gives it. Every process, every signal sent to it and its exit are kept on record
(:class:`ProcessRecord`, wall clock): the verdict reads what was done to whom from there.

Not thread-safe: use it from the thread that will outlive the children (the main thread), since
children die with the thread that started them (``agent_failover.dev.processes``).
"""

from __future__ import annotations

import dataclasses
import signal
import time
from pathlib import Path

from agent_failover.dev.cluster import LocalCluster
from agent_failover.dev.processes import Proc
from agent_failover.dev.soak.schedule import MONITORS, Schedule
from agent_failover.dev.soak.steplog import LEDGER_DIR_ENV

#: Seconds before a monitor worker that exited by itself is started again.
UNEXPECTED_EXIT_PAUSE = 1.0


@dataclasses.dataclass(frozen=True)
class SignalSent:
    """A signal the soak sent: which, when (wall clock), for which fault (None: the run's end)."""

    signal: str
    at: float
    fault: int | None


@dataclasses.dataclass
class ProcessRecord:
    """One process of the run, from its start to its exit (wall clock times)."""

    name: str
    role: str  # "agent" or "monitor"
    slot: int
    generation: int
    pid: int
    spawned_at: float
    agent_id: str | None = None
    capacity: int | None = None
    handoff_wait: float | None = None
    signals: list[SignalSent] = dataclasses.field(default_factory=list)
    exited_at: float | None = None
    returncode: int | None = None

    def signalled(self, names: set[str], before: float) -> SignalSent | None:
        """The first of these signals sent at or before ``before``, if any."""
        return next((s for s in self.signals if s.signal in names and s.at <= before), None)

    def alive_at(self, at: float) -> bool:
        """Whether it had started and not yet been seen exited at ``at``."""
        return self.spawned_at <= at and (self.exited_at is None or at < self.exited_at)

    def frozen_at(self, at: float) -> bool:
        """Whether its last SIGSTOP or SIGCONT before ``at`` was a SIGSTOP."""
        last = [s.signal for s in self.signals if s.signal in ("SIGSTOP", "SIGCONT") and s.at <= at]
        return bool(last) and last[-1] == "SIGSTOP"


class Fleet:
    """Monitor workers and agent slots for one soak, kept filled (see the module docstring)."""

    def __init__(
        self, cluster: LocalCluster, schedule: Schedule, ledger_dir: Path, data_dir: Path
    ) -> None:
        self.cluster = cluster
        self.schedule = schedule
        self.ledger_dir = ledger_dir
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        #: Every process started, in order.
        self.records: list[ProcessRecord] = []
        self._procs: dict[int, Proc] = {}  # pid -> process
        self._agents: list[ProcessRecord] = []  # current process per agent slot
        self._monitors: list[ProcessRecord] = []  # current process per monitor slot
        self._restart_at: dict[int, float] = {}  # monitor slot -> when (monotonic) to restart
        self._generation: dict[tuple[str, int], int] = {}
        self._next_agent = schedule.profile.agents + 1

    # --- starting -------------------------------------------------------------------------

    def start(self) -> None:
        """Start every monitor worker, then every agent slot's first process."""
        self._monitors = [self._spawn_monitor(slot) for slot in range(MONITORS)]
        self._agents = [self._spawn_agent(slot, None) for slot in self.agent_slots()]

    def agent_slots(self) -> range:
        """The agent slots."""
        return range(self.schedule.profile.agents)

    def _next_generation(self, role: str, slot: int) -> int:
        generation = self._generation.get((role, slot), -1) + 1
        self._generation[(role, slot)] = generation
        return generation

    def _spawn_agent(self, slot: int, previous: ProcessRecord | None) -> ProcessRecord:
        generation = self._next_generation("agent", slot)
        plan = self.schedule.process(slot, generation)
        if previous is not None and previous.agent_id is not None and plan.keep_id:
            agent_id = previous.agent_id
        elif previous is None:
            agent_id = f"agent-{slot + 1}"
        else:
            agent_id = f"agent-{self._next_agent}"
            self._next_agent += 1
        capacity = self.schedule.capacities[slot]
        env = {
            "AGENT_FAILOVER_CAPACITY": str(capacity),
            "AGENT_FAILOVER_HANDOFF_WAIT": str(plan.handoff_wait),
            LEDGER_DIR_ENV: str(self.ledger_dir),
        }
        spawned_at = time.time()
        proc = self.cluster.start_agent(agent_id, env)
        return self._keep(
            ProcessRecord(
                name=agent_id,
                role="agent",
                slot=slot,
                generation=generation,
                pid=proc.pid,
                spawned_at=spawned_at,
                agent_id=agent_id,
                capacity=capacity,
                handoff_wait=plan.handoff_wait,
            ),
            proc,
        )

    def _spawn_monitor(self, slot: int) -> ProcessRecord:
        generation = self._next_generation("monitor", slot)
        name = f"monitor-{slot + 1}"
        # A fresh data directory, as a restarted pod without a volume would have.
        env = {"AGENT_FAILOVER_MONITOR_DATA_DIR": str(self.data_dir / f"{name}.{generation}")}
        spawned_at = time.time()
        proc = self.cluster.start_monitor(name, env)
        record = ProcessRecord(name, "monitor", slot, generation, proc.pid, spawned_at)
        return self._keep(record, proc)

    def _keep(self, record: ProcessRecord, proc: Proc) -> ProcessRecord:
        self.records.append(record)
        self._procs[record.pid] = proc
        return record

    # --- looking ------------------------------------------------------------------------------

    def agent(self, slot: int) -> ProcessRecord:
        """The process filling agent ``slot`` now."""
        return self._agents[slot]

    def monitor(self, slot: int) -> ProcessRecord:
        """The process filling monitor ``slot`` now."""
        return self._monitors[slot]

    def monitor_slot_of(self, pid: int) -> int | None:
        """The slot of the live monitor worker with this process id, if there is one."""
        return next(
            (r.slot for r in self._monitors if r.pid == pid and self.running(r)),
            None,
        )

    def running(self, record: ProcessRecord) -> bool:
        """Whether the process runs (alive and not frozen)."""
        return self._procs[record.pid].alive and not record.frozen_at(time.time())

    def log_tail(self, record: ProcessRecord, lines: int = 15) -> str:
        """The end of the process's log (its slot's log, shared by its generations)."""
        return self._procs[record.pid].log_tail(lines)

    # --- acting -----------------------------------------------------------------------------

    def signal(self, record: ProcessRecord, sig: signal.Signals, fault: int | None) -> bool:
        """Send ``sig`` to a live process and keep it on record; False if it had exited."""
        proc = self._procs[record.pid]
        if not proc.alive:
            return False
        record.signals.append(SignalSent(sig.name, time.time(), fault))
        proc.signal(sig)
        return True

    def kill_monitor(self, slot: int, fault: int, restart_after: float) -> ProcessRecord | None:
        """SIGKILL monitor ``slot`` and start it again ``restart_after`` seconds later."""
        record = self._monitors[slot]
        if not self.signal(record, signal.SIGKILL, fault):
            return None
        self._restart_at[slot] = time.monotonic() + restart_after
        return record

    def supervise(self) -> None:
        """Note the processes that exited; replace agents at once, monitors when due."""
        now = time.monotonic()
        for slot, record in enumerate(self._agents):
            if self._note_exit(record):
                self._agents[slot] = self._spawn_agent(slot, record)
        for slot, record in enumerate(self._monitors):
            if self._note_exit(record) and slot not in self._restart_at:
                # It exited by itself: restart it after a pause, not in a tight loop.
                self._restart_at[slot] = now + UNEXPECTED_EXIT_PAUSE
            if record.exited_at is not None and now >= self._restart_at.get(slot, now):
                self._restart_at.pop(slot, None)
                self._monitors[slot] = self._spawn_monitor(slot)

    def _note_exit(self, record: ProcessRecord) -> bool:
        """Record the exit of a process seen exited for the first time; True if it just was."""
        if record.exited_at is not None:
            return False
        returncode = self._procs[record.pid].returncode
        if returncode is None:
            return False
        record.exited_at = time.time()
        record.returncode = returncode
        return True

    def kill_all(self) -> None:
        """The run's end: SIGKILL every live process at once (nothing is written after it)."""
        live = [r for r in self._agents + self._monitors if self._procs[r.pid].alive]
        for record in live:
            self.signal(record, signal.SIGKILL, None)
        for record in live:
            self._procs[record.pid].wait(10.0)
            self._note_exit(record)
