"""One monitor worker: its parts wired together, and the detection tick.

:class:`Monitor` owns one of each part and runs the tick; the parts do the work:

- :class:`~streams.ownership.Ownership`: the owned partitions and since when;
- :class:`~streams.index.RecordIndex`: the owned records, kept where the table is written;
- :class:`~streams.firstseen.FirstSeen`: when each current epoch was first seen;
- :class:`~streams.suspects.SuspectScheduler`: who detection must ask about at the next tick;
- :class:`~streams.decisions.DecisionLog` and :class:`~streams.reservations.ReservationBook`:
  decisions written and not yet applied, placements not yet in heartbeats;
- :class:`~streams.targets.TargetPool`: where tasks may go;
- :class:`~streams.writer.DecisionWriter`: fences, dispatches, and applying them;
- :class:`~streams.summaries.SummaryPublisher`: the fleet summary and the health gauges;
- :class:`~streams.recovery.RecoveryBook`: how moved tasks resume and what their failover lost;
- :class:`~streams.router.Router`: the faust agent's records, decoded and handed on;
- :class:`~streams.outcomes.OutcomePublisher`: how each task ended, published once it counts;
- :class:`~streams.intake.Intake` and :class:`~streams.assign.Assigner`: new work, placed on free
  agents and forwarded once.

Every verdict comes from the pure modules (:mod:`streams.detection`, :mod:`streams.dispatch`,
:mod:`streams.events`). Time is always passed in: ``now`` is the monitor's ``time.monotonic()``.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
import socket
import time
from collections.abc import Callable, Collection, MutableMapping
from typing import Protocol

from agent_failover.config import MonitorConfig
from agent_failover.streams.assign import Assigner
from agent_failover.streams.channels import Message, Send
from agent_failover.streams.deadletters import AgentLetters, DeadLetters
from agent_failover.streams.decisions import DecisionLog
from agent_failover.streams.detection import DetectionPolicy, dead_epochs, timeout_at
from agent_failover.streams.firstseen import FirstSeen
from agent_failover.streams.fleet import EXPIRE_AFTER, FleetDirectory
from agent_failover.streams.index import RecordIndex, Table
from agent_failover.streams.intake import Intake, TaskFeed
from agent_failover.streams.kafkastats import STATS_INTERVAL
from agent_failover.streams.metrics import MonitorMetrics
from agent_failover.streams.outcomes import OutcomePublisher
from agent_failover.streams.ownership import Ownership
from agent_failover.streams.recovery import RecoveryBook
from agent_failover.streams.reservations import ReservationBook
from agent_failover.streams.router import Router
from agent_failover.streams.state import LiveEntry
from agent_failover.streams.summaries import SummaryPublisher
from agent_failover.streams.suspects import SuspectScheduler
from agent_failover.streams.targets import TargetPool
from agent_failover.streams.writer import DecisionWriter

log = logging.getLogger(__name__)


def monitor_id() -> str:
    """This worker's name in decision records: host and process id."""
    return f"{socket.gethostname()}-{os.getpid()}"


class Liveness(Protocol):
    """What the monitor reads of the heartbeat map (:class:`streams.liveness.LivenessTracker`)."""

    #: The monitor time of the heartbeat thread's last poll.
    last_poll: float
    #: The monitor time the broker last answered the heartbeat thread (None: not known).
    answered_at: float | None

    @property
    def assigned(self) -> frozenset[int]: ...
    @property
    def caught_up(self) -> frozenset[int]: ...
    def behind(self, now: float) -> float: ...
    def assign(self, partitions: Collection[int]) -> None: ...
    def get(self, agent_id: str) -> LiveEntry | None: ...
    def snapshot(self) -> dict[str, LiveEntry]: ...
    def expired(self, seen_before: float) -> list[LiveEntry]: ...
    def drain_changed(self) -> list[str]: ...


class Skipped(enum.StrEnum):
    """Why a tick decided nothing."""

    BUSY = "busy"  # rebalancing or recovering
    STALLED = "stalled"  # the loop or the heartbeat thread was starved: liveness is stale
    BROKER = "broker"  # the broker went quiet: heartbeats may be missing, not late
    ASSIGNING = "assigning"  # the heartbeat thread has not read every owned partition to its end
    LAGGING = "lagging"  # the heartbeat thread trails its partitions by more than the stall limit
    UNOWNED = "unowned"  # no partition owned: only the (empty) fleet summary goes out


@dataclasses.dataclass(frozen=True, slots=True)
class TickReport:
    """What one tick did: the agents detection asked about, in order, or why it decided
    nothing."""

    examined: tuple[str, ...] = ()
    skipped: Skipped | None = None


class Monitor:
    """One worker's detection and failover logic over its owned partitions.

    ``directory`` holds other workers' fleet summaries (fed by the liveness thread); its
    ``monitor_id`` names this worker in decision records and in its own summaries. ``progress``
    is the ``intake`` table and ``feed`` the faust side of the task partitions (the intake's);
    ``clock`` is the monitor's clock for the intake, which reads it itself while it waits.

    The detection tick costs what changed or expired, not the fleet (docs/architecture.md,
    "Monitor hot path"): it asks :func:`dead_epochs` only about the agents the
    :class:`SuspectScheduler` names.
    """

    def __init__(
        self,
        config: MonitorConfig,
        table: Table,
        liveness: Liveness,
        metrics: MonitorMetrics,
        send: Send,
        directory: FleetDirectory | None = None,
        *,
        progress: MutableMapping[int, int],
        feed: TaskFeed,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        topics = config.topics
        self.policy = DetectionPolicy.from_config(config)
        timeout = self.policy.heartbeat_timeout
        if directory is None:
            directory = FleetDirectory(monitor_id(), topics.agent_partitions)
        self.monitor_id = directory.monitor_id
        self.liveness = liveness
        self.metrics = metrics
        metrics.heartbeat_timeout.set(timeout)
        self.recovery = RecoveryBook(metrics)
        self.ownership = Ownership(topics.agent_partitions, self.policy.grace_period)
        self.index = RecordIndex(table)
        self.first_seen = FirstSeen()
        self.suspects = SuspectScheduler()
        # A decision not seen applied within this long is written again.
        self.decisions = DecisionLog(ttl=max(10.0, 3 * timeout))
        # A local placement shows in its target's record within moments; if it never does (its
        # decision lost to an earlier one elsewhere), it stops counting as late as a decision.
        self.reservations = ReservationBook(
            local_hold=max(10.0, 3 * timeout), remote_hold=EXPIRE_AFTER
        )
        self.targets = TargetPool(
            self.policy, self.ownership, liveness.snapshot, liveness.get, self.index, directory
        )
        dead_letters = DeadLetters(topics, send, metrics)
        self.agent_letters = AgentLetters(topics, metrics, config.kafka.signer)
        self.writer = DecisionWriter(
            config,
            self.monitor_id,
            send,
            ownership=self.ownership,
            index=self.index,
            decisions=self.decisions,
            reservations=self.reservations,
            targets=self.targets,
            metrics=metrics,
            recovery=self.recovery,
        )
        self.publisher = SummaryPublisher(
            self.monitor_id,
            topics.fleet,
            send,
            policy=self.policy,
            ownership=self.ownership,
            lives=liveness.snapshot,
            index=self.index,
            first_seen=self.first_seen,
            targets=self.targets,
            reservations=self.reservations,
            metrics=metrics,
        )
        self.intake = Intake(
            topics,
            send,
            stuck_after=config.stuck_after,
            # Detection fences an agent not heard since the takeover after this long.
            hear_within=self.policy.grace_period + timeout,
            progress=progress,
            feed=feed,
            ownership=self.ownership,
            index=self.index,
            live=liveness.get,
            targets=self.targets,
            reservations=self.reservations,
            writer=self.writer,
            dead_letters=dead_letters,
            metrics=metrics,
            signer=config.kafka.signer,
            clock=clock,
        )
        self.assigner = Assigner(
            topics,
            send,
            progress=progress,
            ownership=self.ownership,
            reservations=self.reservations,
            dead_letters=dead_letters,
            metrics=metrics,
            signer=config.kafka.signer,
        )
        self.router = Router(
            topics,
            ownership=self.ownership,
            index=self.index,
            writer=self.writer,
            reservations=self.reservations,
            dead_letters=dead_letters,
            metrics=metrics,
            on_change=self.intake.wake,
            recovery=self.recovery,
            outcomes=OutcomePublisher(topics, send),
            signer=config.kafka.signer,
        )
        self._last_tick: float | None = None  # None: no tick yet, nothing can have stalled
        self._skipping: Skipped | None = Skipped.ASSIGNING  # why the last tick decided nothing
        self._unread: frozenset[int] = frozenset()  # owned, not read to the end at the last tick
        # Beyond this the heartbeat thread or the loop was starved: liveness is not trustworthy.
        self._stall_limit = max(timeout / 3, 0.5)
        # Beyond this the broker has not answered the heartbeat thread: an agent's missing
        # heartbeat may never have reached it. Below the timeout minus a heartbeat interval, so
        # an outage is seen before its first missing heartbeat could fence anyone; above a
        # healthy broker's silence as its statistics report it (their interval + one fetch).
        self._silence_limit = max(self._stall_limit, 4 * STATS_INTERVAL)

    async def on_message(self, msg: Message, now: float) -> None:
        """Handle one record of task-events, tasks.priority or control (see :class:`Router`)."""
        await self.router.on_message(msg, now)

    async def on_task(self, msg: Message, current: Callable[[], bool]) -> None:
        """Place one record of ``tasks`` (see :class:`~streams.intake.Intake`)."""
        await self.intake.on_task(msg, current)

    async def on_decision(self, msg: Message) -> None:
        """Apply one record of ``tasks.assigned`` (see :class:`~streams.assign.Assigner`)."""
        await self.assigner.on_decision(msg)

    def on_dead_letter(self, msg: Message) -> None:
        """Count one record of ``dead-letter`` if an agent wrote it (see
        :class:`~streams.deadletters.AgentLetters`)."""
        self.agent_letters.on_message(msg)

    async def tick(self, owned: Collection[int], busy: bool, now: float) -> TickReport:
        """One detection round over the ``owned`` partitions at ``now`` (``busy``: rebalancing
        or recovering).

        Decides nothing while busy; while the broker does not answer the heartbeat thread (every
        partition then counts as owned from the silence's end); while the heartbeat thread has
        not read every owned partition to its end since it was assigned (those count as owned
        from then on); while it trails its partitions by more than the stall limit
        (max(timeout / 3, 0.5 s)); or after a stall (a tick or a heartbeat poll longer ago than
        that limit: every partition then counts as owned from the stall's end). Every verdict
        uses ``now``, so a slow tick can only delay a fence, never bring one forward.
        """
        started = time.perf_counter()
        try:
            return await self._tick(frozenset(owned), busy, now)
        finally:
            self.metrics.tick_seconds.observe(time.perf_counter() - started)

    def grace_left(self, now: float) -> float:
        """Seconds until no owned partition is in its grace period any more (0: none is)."""
        end = max(self.ownership.since.values(), default=now - self.policy.grace_period)
        return max(0.0, end + self.policy.grace_period - now)

    async def _tick(self, partitions: frozenset[int], busy: bool, now: float) -> TickReport:
        self.metrics.partitions_owned.set(len(partitions))
        self.ownership.set(partitions, now)
        self.liveness.assign(partitions)
        unread = partitions - self.liveness.caught_up
        # Nobody there can have been heard yet; and a partition read to its end since the last
        # tick counts from this tick, not from that one.
        if unread or self._unread:
            self.ownership.rearm(now, unread | self._unread)
        self._unread = unread
        stalled = self._last_tick is not None and now - self._last_tick > self._stall_limit
        stalled = stalled or now - self.liveness.last_poll > self._stall_limit
        answered = self.liveness.answered_at
        silent = answered is not None and now - answered > self._silence_limit
        self._last_tick = now
        skipped: Skipped | None = None
        if busy:
            skipped = Skipped.BUSY
        elif stalled:
            skipped = Skipped.STALLED
        elif silent:
            skipped = Skipped.BROKER
        elif unread:
            skipped = Skipped.ASSIGNING
        elif self.liveness.behind(now) > self._stall_limit:
            skipped = Skipped.LAGGING
        self._note_skipping(skipped, partitions, now)
        if skipped is not None:
            if stalled or silent:
                self.ownership.rearm(now)  # liveness may be stale everywhere: age from here
            if busy:
                self.index.invalidate()  # recovery writes the table without us: rebuild after it
            self.intake.wake()  # a record waiting for a slot looks whether it is still ours
            return TickReport(skipped=skipped)
        if not partitions:
            # Still publish: an empty summary retracts this worker's claims at once. The intake
            # may own task partitions all the same: it places on other workers' agents.
            self.intake.tick(now)
            self.publisher.publish_fleet(partitions, now)
            return TickReport(skipped=Skipped.UNOWNED)
        if self.index.stale(partitions):
            self._reindex(partitions)
        self.decisions.expire(now, self.index.get)
        self.reservations.expire(now)
        self.recovery.settle(time.time())
        examined = await self._detect(now)
        await self.writer.dispatch_queued(now)
        self.intake.tick(now)
        self.publisher.publish_health(now)
        self.publisher.publish_fleet(partitions, now)
        return TickReport(examined)

    def _note_skipping(
        self, skipped: Skipped | None, partitions: frozenset[int], now: float
    ) -> None:
        """Log when decisions stop or resume (once per change, not per tick)."""
        if skipped is Skipped.STALLED:
            log.warning("monitor stalled: no decisions; liveness restarts now")
        elif skipped is Skipped.BROKER and self._skipping is not Skipped.BROKER:
            log.warning(
                "the broker has not answered for %.1fs: no decisions; every agent gets a whole "
                "heartbeat timeout once it answers again",
                now - (self.liveness.answered_at or now),
            )
        elif skipped is Skipped.LAGGING and self._skipping is not Skipped.LAGGING:
            log.warning(
                "heartbeat reader %.1fs behind: no decisions until it catches up",
                self.liveness.behind(now),
            )
        elif skipped is None and self._skipping is not None and partitions:
            log.info("deciding on partitions %s (was %s)", sorted(partitions), self._skipping)
        self._skipping = skipped

    async def _detect(self, now: float) -> tuple[str, ...]:
        """Fence the dead epochs among the agents whose verdict may have changed."""
        heard = self.liveness.drain_changed()
        self.suspects.touch(heard)
        if heard:  # new agents (or epochs) are targets at once, not at the next pass
            self.targets.heard(heard, now)
            self.intake.wake()
        self.suspects.touch(self.index.drain_written())
        silent = self.liveness.expired(now - self.policy.heartbeat_timeout)
        todo = self.suspects.take(now, (e.agent_id for e in silent))
        examined: list[str] = []
        done = 0
        try:
            for agent_id in todo.order:
                if await self._examine(agent_id, agent_id in todo.changed, now):
                    examined.append(agent_id)
                done += 1
        finally:
            # A failed write aborts the tick: whoever was not examined is asked again next tick.
            self.suspects.touch(todo.order[done:])
        return tuple(examined)

    async def _examine(self, agent_id: str, changed: bool, now: float) -> bool:
        """Ask detection about one agent, fence what is dead and say when to ask again; returns
        whether it was asked (an agent not owned or unknown is forgotten instead)."""
        since = self.ownership.owned_since(agent_id)
        rec, live = self.index.get(agent_id), self.liveness.get(agent_id)
        if since is None or (rec is None and live is None):
            self.suspects.forget(agent_id)
            self.first_seen.forget(agent_id)
            return False
        if changed:
            self.first_seen.note(agent_id, rec, live, now)
        known = self.first_seen.get(agent_id)
        dead = dead_epochs(rec, live, now, since, self.policy, known)
        for d in dead:
            await self.writer.fence(rec, d, now)
        if dead:
            self.suspects.watch(agent_id)  # until the fence is applied (or must be written again)
            return True
        self.suspects.unwatch(agent_id)
        timeout = self.policy.heartbeat_timeout
        at = timeout_at(rec, live, since, self.policy, known)
        if at is None:
            if live is not None and now - live.last_seen >= timeout:
                self.suspects.quiet(agent_id)  # silent but closed: skip it until it changes
            return True
        if live is None or at != live.last_seen + timeout:
            self.suspects.wake_at(agent_id, at)  # a deadline the silent scan would not find
        return True

    def _reindex(self, partitions: frozenset[int]) -> None:
        """Rebuild the owned-records index from the table, and ask about every owned agent."""
        self.liveness.drain_changed()  # everyone is asked below (drained first: none is lost)
        records = self.index.rebuild(partitions)
        lives = self.liveness.snapshot()
        if not self.ownership.owns_all:
            owns = self.ownership.owns
            lives = {a: e for a, e in lives.items() if owns(a)}
        everyone = records.keys() | lives.keys()
        self.first_seen.keep_only(everyone)
        self.suspects.reset(everyone)
        self.targets.invalidate()
        log.info("indexed %d records, %d live agents", len(records), len(lives))
