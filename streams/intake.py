"""The intake: new work from ``tasks`` placed on free agents, one decision per task record.

The monitor places new work as it places failover work (docs/architecture.md, "The monitor
dispatches all work"). The faust agent ``intake`` hands this part every record of the task
partitions this worker owns, in offset order, one at a time. For a record at ``(p, o)``:

1. skip it if ``o`` is below the partition's progress: ``applied_upto[p]`` (the ``intake``
   table, written by :mod:`streams.assign`) or a decision this process already wrote for it;
2. check its signature and decode it (bad: dead letter, go on);
3. wait (woken by record changes, and by the tick at most every :data:`RECHECK` while it waits)
   until this worker has heard its agents (every agent its table knows as running has beaten
   since it took over their partition, or detection would fence it by now: the grace period
   plus the heartbeat timeout), has no failover move waiting for an agent, and an ACTIVE agent
   has a free slot (:func:`~streams.dispatch.choose_new`);
4. write the decision to ``tasks.assigned`` partition ``p``: a ``redispatch`` of attempt 1,
   reason ``new``, naming the target epoch and ``source: {partition: p, offset: o}``; once
   acknowledged, reserve the slot.

Nothing here commits an offset of ``tasks``: the topic is read without acknowledgements, and a
new owner of ``p`` starts again from ``applied_upto[p]``, so a record whose decision was never
written is read again. A decision written twice is harmless: the first one per source offset is
the one forwarded (:mod:`streams.assign`). If the partition is taken away (a rebalance) while a
record waits, the wait ends and nothing is written; its next owner reads the record again.

Writing a decision is tried until it is acknowledged (or the partition is lost): a broker outage
must not lose a task. Anything else that fails is the record's: a decision too large for any
broker is dead-lettered (``too_large``), and so is a record whose handling raises (``internal``);
the next record is placed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Protocol

from agent_failover.config import Topics
from agent_failover.errors import CodecError, Refusal
from agent_failover.models import DispatchReason, Redispatch, SourceRef, Task
from agent_failover.signing import Signer
from agent_failover.streams.channels import Message, Send, oversize, until_done
from agent_failover.streams.deadletters import DeadLetters
from agent_failover.streams.dispatch import Candidate, choose_new, free_slots
from agent_failover.streams.fleet import PUBLISH_INTERVAL
from agent_failover.streams.index import RecordIndex
from agent_failover.streams.metrics import MonitorMetrics
from agent_failover.streams.ownership import Ownership
from agent_failover.streams.reservations import ReservationBook
from agent_failover.streams.state import LiveEntry
from agent_failover.streams.targets import POOL_TTL, TargetPool
from agent_failover.streams.writer import DecisionWriter

log = logging.getLogger(__name__)

#: While a record waits, the tick wakes it at most this often to look at heartbeats and fleet
#: summaries again (record changes wake it at once).
RECHECK = POOL_TTL
#: How old a pass over the owned agents may be when placing new work. The fleet summary makes one
#: every PUBLISH_INTERVAL in a worker thread; a pass on the event loop costs tens of milliseconds
#: at 20k agents, which a steady flow of new work would otherwise pay every POOL_TTL. Agents whose
#: record changed since are looked at again anyway (streams.targets); what may be this old is
#: only heartbeat news: a new agent, one turning degraded.
POOL_AGE = 2 * PUBLISH_INTERVAL
#: At most one warning about stuck work per this many seconds.
WARN_EVERY = 60.0
#: Seconds between two looks at whether waiting work is stuck (only while something waits).
CHECK_EVERY = 1.0


class Progress(Protocol):
    """The ``intake`` table: task partition -> the offset after the last record forwarded."""

    def get(self, partition: int) -> int | None: ...


class TaskFeed(Protocol):
    """What the intake needs of the faust worker that feeds it ``tasks``."""

    def owned(self) -> frozenset[int]:
        """The task partitions this worker owns now."""
        ...

    def busy(self) -> bool:
        """True while the worker rebalances or recovers its tables."""
        ...

    def highwater(self, partition: int) -> int | None:
        """The end offset of a task partition, as far as the consumer knows it."""
        ...

    async def skip_to(self, partition: int, offset: int) -> None:
        """Read the task partition from ``offset`` on (records before it are done)."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class IntakeStatus:
    """What the intake waits for, for metrics and the stuck-work warning.

    ``backlog``: per owned task partition, records not yet forwarded (end offset minus
    ``applied_upto``); ``oldest_wait_s``: how long the record being placed has waited (0: none
    waits); ``free_slots``: free slots of active agents; ``stuck``: records not yet placed on
    partitions where nothing was read for ``stuck_after``, while active agents have free slots
    (else 0); ``moves_waiting`` / ``moves_stuck``: this worker's failover moves that found no
    agent, and those waiting longer than ``stuck_after`` while any agent had a free slot
    (:meth:`~streams.writer.DecisionWriter.moves_stuck`).
    """

    backlog: Mapping[int, int]
    oldest_wait_s: float
    free_slots: int
    stuck: int
    moves_waiting: int
    moves_stuck: int


@dataclasses.dataclass(slots=True)
class _Waiting:
    partition: int
    offset: int
    task_id: str
    since: float  # monitor clock


class Intake:
    """Places new work: one decision per record of the owned task partitions (module docstring).

    ``clock`` is the monitor's ``time.monotonic()`` (tests pass their own).
    """

    def __init__(
        self,
        topics: Topics,
        send: Send,
        *,
        stuck_after: float,
        hear_within: float,
        progress: Progress,
        feed: TaskFeed,
        ownership: Ownership,
        index: RecordIndex,
        live: Callable[[str], LiveEntry | None],
        targets: TargetPool,
        reservations: ReservationBook,
        writer: DecisionWriter,
        dead_letters: DeadLetters,
        metrics: MonitorMetrics,
        signer: Signer,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._topics = topics
        self._send = send
        self._signer = signer
        self._stuck_after = stuck_after
        self._hear_within = hear_within
        self._progress = progress
        self._feed = feed
        self._ownership = ownership
        self._index = index
        self._live = live
        self._targets = targets
        self._reservations = reservations
        self._writer = writer
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._clock = clock
        self._decided: dict[int, int] = {}  # partition -> offset after our last decision there
        self._last_read: dict[int, int] = {}  # partition -> offset of the last record read
        self._read_at: dict[int, float] = {}  # partition -> when (monitor clock) it was read
        self._behind_since: dict[int, float] = {}  # records to place, none read since
        self._left: dict[int, int] = {}  # partition -> a record left undecided (lost partition)
        self._waiting: _Waiting | None = None
        self._wake = asyncio.Event()
        self._last_recheck = 0.0
        self._last_check: float | None = None
        self._last_warning: float | None = None

    # -- the records ----------------------------------------------------------------------------

    def next_offset(self, partition: int) -> int:
        """The first offset of ``partition`` that may still need a decision."""
        applied = self._progress.get(partition) or 0
        return max(applied, self._decided.get(partition, 0))

    async def on_task(self, msg: Message, current: Callable[[], bool]) -> None:
        """Decide where the task record ``msg`` runs (see the module docstring).

        ``current()`` says whether this worker still owns the record's partition in the
        assignment it was read in; once it does not, the record is left for the next owner.
        Never raises: a record whose handling fails is dead-lettered and counts as decided.
        """
        if not await self._dead_letters.contain(msg, lambda: self._place(msg, current)):
            p = msg.partition
            self._decided[p] = max(self._decided.get(p, 0), msg.offset + 1)

    async def _place(self, msg: Message, current: Callable[[], bool]) -> None:
        p, o = msg.partition, msg.offset
        previous = self._last_read.get(p)
        self._last_read[p] = o
        self._read_at[p] = self._clock()
        start = self.next_offset(p)
        left = self._left.get(p)
        if left is not None and left < start:
            del self._left[p]  # another owner placed it meanwhile
        elif left is not None and o > left:
            # Reading went on past a record left undecided (a new assignment normally starts
            # over from the beginning; this does not rely on it): go back to it.
            await self._feed.skip_to(p, left)
            return
        elif left == o:
            del self._left[p]
        if o < start:
            if previous is None or o <= previous:
                # Read from an earlier position (a new assignment starts at the beginning):
                # jump to where work is left instead of reading every done record.
                await self._feed.skip_to(p, start)
            return
        try:
            task = self._signer.open(Task, msg)
        except CodecError as exc:
            await self._dead_letters.send(msg, str(exc), exc.refusal)
            self._decided[p] = o + 1
            return
        self._waiting = _Waiting(p, o, task.task_id, self._clock())
        try:
            target = await self._wait_for_slot(current)
            if target is not None and await self._decide(task, target, msg, current):
                self._decided[p] = o + 1
                return
            log.info("task %s (%d@%d) left to the partition's next owner", task.task_id, p, o)
            self._left[p] = min(o, self._left.get(p, o))
        finally:
            self._waiting = None

    async def _wait_for_slot(self, current: Callable[[], bool]) -> Candidate | None:
        """A target for new work once there is one; None if the partition is no longer ours."""
        while True:
            self._wake.clear()
            if not current():
                return None
            target = self._choose(self._clock())
            if target is not None:
                return target
            await self._wake.wait()

    def _choose(self, now: float) -> Candidate | None:
        if self._feed.busy() or self._writer.moves_waiting() or self._learning(now):
            return None  # failover work first; no placement on a view still being built
        return choose_new(self._targets.pool(now, POOL_AGE), self._reservations.counts())

    def _learning(self, now: float) -> bool:
        """Whether an agent partition taken over less than ``hear_within`` ago holds an agent
        the table knows as running and that has not beaten since: work placed now would pile on
        the first agents to beat. After that, detection fences such an agent (it ages an agent
        never heard from the takeover, docs/architecture.md "Monitor takeover")."""
        window = self._hear_within
        fresh = {p for p, since in self._ownership.since.items() if now - since < window}
        if not fresh:
            return False  # the common case: no scan
        for agent_id, rec in self._index.records.items():
            epoch = rec.epoch
            if rec.partition not in fresh or epoch is None:
                continue
            if epoch in rec.stopped or rec.is_fenced(epoch):
                continue
            live = self._live(agent_id)
            if live is None or live.epoch < epoch:
                return True
        return False

    async def _decide(
        self, task: Task, target: Candidate, msg: Message, current: Callable[[], bool]
    ) -> bool:
        """Write the decision and reserve the slot (True); False if the partition was lost
        first. A decision no broker would take sets the record aside instead (True: decided)."""
        p, o = msg.partition, msg.offset
        decision = Redispatch(
            task=task,
            attempt=1,
            target_agent_id=target.agent_id,
            target_epoch=target.epoch,
            reason=DispatchReason.NEW,
            decision_id=uuid.uuid4().hex,
            dispatched_at=time.time(),
            source=SourceRef(partition=p, offset=o),
        )
        key, value = task.task_id.encode(), decision.encode()
        too_large = oversize(key, value)
        if too_large is not None:
            await self._dead_letters.send(msg, f"its decision: {too_large}", Refusal.TOO_LARGE)
            return True

        async def write() -> None:
            ack = await self._send(self._topics.assigned, key, value, p)
            await ack

        if not await until_done(write, f"the decision for task {task.task_id}", current):
            return False
        local = self._ownership.owns(target.agent_id)
        self._reservations.reserve(target.key, task.task_id, self._clock(), local=local)
        log.debug("task %s -> %s epoch %d", task.task_id, target.agent_id, target.epoch)
        return True

    # -- waking and reporting -------------------------------------------------------------------

    def wake(self) -> None:
        """Something that frees or adds a slot happened: a waiting record looks again."""
        self._wake.set()

    def tick(self, now: float) -> None:
        """From the detection tick: let a waiting record look at heartbeats and summaries again
        (at most every :data:`RECHECK`, at once while the worker is busy, so that a record of a
        partition being taken away stops waiting); every :data:`CHECK_EVERY` publish the backlog
        and the stuck new work (``agent_failover_tasks_backlog``, ``..._tasks_stuck``), and warn
        about stuck work once a minute."""
        if self._waiting is not None and (self._feed.busy() or now - self._last_recheck >= RECHECK):
            self._last_recheck = now
            self._wake.set()
        if self._last_check is not None and now - self._last_check < CHECK_EVERY:
            return
        self._last_check = now
        writer = self._writer
        if not self._undecided() and not writer.moves_waiting() and not writer.moves_stuck():
            # The common case: nothing waits, nothing to look at but the backlog (records
            # decided and not yet forwarded).
            self._behind_since.clear()
            self._metrics.set_backlog(sum(self._backlog().values()), 0)
            return
        status = self.status(now)
        self._metrics.set_backlog(sum(status.backlog.values()), status.stuck)
        if (status.stuck or status.moves_stuck) and (
            self._last_warning is None or now - self._last_warning >= WARN_EVERY
        ):
            self._last_warning = now
            log.warning(
                "work waits while agents have %d free slot(s): %d new task(s) (the oldest "
                "waiting %.0f s), %d failover move(s)",
                status.free_slots,
                status.stuck,
                status.oldest_wait_s,
                status.moves_stuck,
            )

    def _undecided(self) -> dict[int, int]:
        """Owned task partition -> records not decided yet, for those that have any."""
        out = {}
        for p in self._feed.owned():
            high = self._feed.highwater(p)
            if high is not None and high > self.next_offset(p):
                out[p] = high - self.next_offset(p)
        return out

    def status(self, now: float) -> IntakeStatus:
        """The backlog of the owned task partitions, what waits and for how long, and whether it
        is stuck: records not placed on a partition where nothing was read for ``stuck_after``
        (the record being placed waits for a slot, or none arrives) while agents have free slots.
        """
        backlog = self._backlog()
        stalled = 0
        undecided = self._undecided()
        for p, n in undecided.items():
            last = self._read_at.get(p)
            if last is None:
                last = self._behind_since.setdefault(p, now)
            if now - last > self._stuck_after:
                stalled += n
        for p in [p for p in self._behind_since if p not in undecided]:
            del self._behind_since[p]
        pool = self._targets.pool(now, POOL_AGE)
        reserved = self._reservations.counts()
        free = free_slots(pool, reserved)
        return IntakeStatus(
            backlog=backlog,
            oldest_wait_s=now - self._waiting.since if self._waiting is not None else 0.0,
            free_slots=free,
            stuck=stalled if free else 0,
            moves_waiting=self._writer.moves_waiting(),
            moves_stuck=self._writer.moves_stuck(),
        )

    def _backlog(self) -> dict[int, int]:
        """Owned task partition -> records not forwarded yet (end offset minus applied_upto),
        for the partitions whose end offset the consumer knows."""
        backlog = {}
        for p in sorted(self._feed.owned()):
            high = self._feed.highwater(p)
            if high is not None:
                backlog[p] = max(0, high - (self._progress.get(p) or 0))
        return backlog
