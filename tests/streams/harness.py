"""A monitor worker without Kafka, for the tests of its parts: an outbox in place of the producer,
a heartbeat map fed by the test in place of the heartbeat thread, and the monitor's clock as
plain numbers the test passes in."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Awaitable, Collection, Iterable
from typing import Any

from agent_failover.config import KafkaConfig, MonitorConfig, Topics
from agent_failover.models import Control, Pool
from agent_failover.partitioner import partition_for
from agent_failover.signing import Signer
from agent_failover.streams.fleet import FleetDirectory
from agent_failover.streams.metrics import MonitorMetrics
from agent_failover.streams.monitor import Monitor, TickReport
from agent_failover.streams.state import AgentRecord, LiveEntry

T0 = 1000.0  # the monitor clock at a harness's first tick


def agent_in(partition: int, partitions: int, skip: int = 0) -> str:
    """The first agent id ``p<partition>-<n>`` whose key hashes to ``partition`` (after
    ``skip`` others)."""
    names = (f"p{partition}-{n}" for n in itertools.count())
    found = (a for a in names if partition_for(a, partitions) == partition)
    return next(itertools.islice(found, skip, None))


@dataclasses.dataclass(frozen=True)
class Sent:
    """One record the monitor produced."""

    topic: str
    key: bytes
    value: bytes
    partition: int


class Outbox:
    """The monitor's ``send``: records what it is given and acknowledges at once."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []

    async def send(self, topic: str, key: bytes, value: bytes, partition: int) -> Awaitable[Any]:
        self.sent.append(Sent(topic, key, value, partition))
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ack.set_result(None)
        return ack

    def take(self, topic: str) -> list[Sent]:
        """The records sent to ``topic`` since the last take of it (they are removed)."""
        out = [s for s in self.sent if s.topic == topic]
        self.sent = [s for s in self.sent if s.topic != topic]
        return out


class LiveMap:
    """The heartbeat map as :class:`streams.liveness.LivenessTracker` keeps it, fed by the test.

    Same contract: entries in ``last_seen`` order (a heartbeat moves its agent to the end), an
    agent listed by :meth:`drain_changed` when it first appears or changes epoch, an older epoch's
    heartbeat ignored, and a new assignment taken (and read to its end) at the thread's next
    :meth:`poll`. ``lag_s`` is how far behind the thread is, as the test sets it; with
    ``broker_up`` false its polls get no answer (``answered_at`` stays where it was).
    """

    def __init__(self) -> None:
        self.last_poll = 0.0
        self.answered_at: float | None = None
        self.broker_up = True
        self.lag_s = 0.0
        self._entries: dict[str, LiveEntry] = {}
        self._changed: list[str] = []
        self._wanted: frozenset[int] = frozenset()
        self._assigned: frozenset[int] = frozenset()

    def poll(self, now: float) -> None:
        """What one poll of the heartbeat thread does besides reading heartbeats."""
        self._assigned = self._wanted
        self.last_poll = now
        if self.broker_up:
            self.answered_at = now

    def beat(
        self,
        agents: Iterable[str],
        at: float,
        *,
        epoch: int = 1,
        pool: Pool = Pool.ACTIVE,
        capacity: int = 2,
    ) -> None:
        """Heartbeats of ``agents`` received at ``at`` (never before an earlier beat)."""
        newest = next(reversed(self._entries.values()), None)
        assert newest is None or at >= newest.last_seen, "heartbeats arrive in time order"
        for agent_id in agents:
            current = self._entries.pop(agent_id, None)
            if current is not None and epoch < current.epoch:
                self._entries[agent_id] = current  # an older incarnation proves nothing
                continue
            if current is None or current.epoch != epoch:
                self._changed.append(agent_id)
            self._entries[agent_id] = LiveEntry(agent_id, epoch, 0, at, capacity, (), pool)

    @property
    def assigned(self) -> frozenset[int]:
        return self._assigned

    @property
    def caught_up(self) -> frozenset[int]:
        return self._assigned

    def behind(self, now: float) -> float:
        return self.lag_s

    def assign(self, partitions: Collection[int]) -> None:
        self._wanted = frozenset(partitions)

    def get(self, agent_id: str) -> LiveEntry | None:
        return self._entries.get(agent_id)

    def snapshot(self) -> dict[str, LiveEntry]:
        return self._entries.copy()

    def expired(self, seen_before: float) -> list[LiveEntry]:
        return list(
            itertools.takewhile(lambda e: e.last_seen <= seen_before, self._entries.values())
        )

    def drain_changed(self) -> list[str]:
        changed, self._changed = self._changed, []
        return changed


@dataclasses.dataclass(frozen=True)
class Msg:
    """A record of the faust agent's topics, as :meth:`Monitor.on_message` reads it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]] | None = None


class Feed:
    """The task partitions as a test decides them (the intake's ``TaskFeed``)."""

    def __init__(self, owned: Collection[int] = (0,)) -> None:
        self.partitions = frozenset(owned)
        self.rebalancing = False
        self.high: dict[int, int] = {}
        self.skipped_to: list[tuple[int, int]] = []

    def owned(self) -> frozenset[int]:
        return self.partitions

    def busy(self) -> bool:
        return self.rebalancing

    def highwater(self, partition: int) -> int | None:
        return self.high.get(partition)

    async def skip_to(self, partition: int, offset: int) -> None:
        self.skipped_to.append((partition, offset))

    def current(self, partition: int) -> bool:
        return not self.rebalancing and partition in self.partitions


class Clock:
    """The monitor clock the intake reads while it waits: set by the test."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Worker:
    """A :class:`Monitor` over ``table`` with an outbox and a :class:`LiveMap`; ``kafka`` may
    carry a signing key (records delivered are then signed with it unless told otherwise)."""

    def __init__(
        self,
        table: dict[str, AgentRecord],
        *,
        topics: Topics,
        timeout: float = 3.0,
        grace: float = 0.0,
        directory: FleetDirectory | None = None,
        stuck_after: float = 30.0,
        kafka: KafkaConfig | None = None,
    ) -> None:
        self.topics = topics
        self.config = MonitorConfig(
            kafka=kafka or KafkaConfig("127.0.0.1:9"),
            topics=topics,
            heartbeat_timeout=timeout,
            grace_period=grace,
            stuck_after=stuck_after,
        )
        self.table = table
        self.outbox = Outbox()
        self.live = LiveMap()
        self.metrics = MonitorMetrics()
        self.progress: dict[int, int] = {}
        self.feed = Feed()
        self.clock = Clock(T0)
        self.monitor = Monitor(
            self.config,
            table,
            self.live,
            self.metrics,
            self.outbox.send,
            directory or FleetDirectory("w1", topics.agent_partitions),
            progress=self.progress,
            feed=self.feed,
            clock=self.clock,
        )

    def tick(
        self,
        now: float,
        owned: Collection[int] = (0,),
        *,
        busy: bool = False,
        caught_up: bool = True,
    ) -> TickReport:
        """A tick at ``now``, and the summaries it started. The heartbeat thread polled just
        before; ``caught_up``: it has already read ``owned`` to their end."""
        return asyncio.run(self.atick(now, owned, busy=busy, caught_up=caught_up))

    async def atick(
        self,
        now: float,
        owned: Collection[int] = (0,),
        *,
        busy: bool = False,
        caught_up: bool = True,
    ) -> TickReport:
        """:meth:`tick` inside a running loop (for tests that keep the intake waiting)."""
        if caught_up:
            self.live.assign(owned)
        self.live.poll(now)
        self.clock.now = now
        report = await self.monitor.tick(owned, busy, now)
        await self.monitor.publisher.wait()
        return report

    def deliver(self, *args: Any, **kwargs: Any) -> None:
        """One record of the faust agent's topics handed to the monitor: :meth:`adeliver`, run
        on a loop of its own."""
        asyncio.run(self.adeliver(*args, **kwargs))

    async def adeliver(
        self,
        topic: str,
        key: str,
        value: bytes | None,
        now: float,
        partition: int = 0,
        signer: Signer | None = None,
    ) -> None:
        """One record of the faust agent's topics handed to the monitor inside a running loop,
        signed by ``signer`` (default: the fleet's, this worker's own key)."""
        await self.monitor.on_message(self._msg(topic, partition, 1, key, value, signer), now)

    async def place(self, value: bytes | None, partition: int = 0, **at: Any) -> None:
        """A record of ``tasks`` handed to the intake; returns once it is placed (or left).
        ``at``: its ``offset`` (default 0) and the ``signer`` (default: the fleet's)."""
        msg = self._at(self.topics.tasks, partition, value, **at)
        await self.monitor.on_task(msg, lambda: self.feed.current(partition))

    async def assign(self, value: bytes | None, partition: int = 0, **at: Any) -> None:
        """A record of ``tasks.assigned`` handed to the assigner (``at`` as for :meth:`place`)."""
        await self.monitor.on_decision(self._at(self.topics.assigned, partition, value, **at))

    def _at(
        self,
        topic: str,
        partition: int,
        value: bytes | None,
        offset: int = 0,
        signer: Signer | None = None,
    ) -> Msg:
        return self._msg(topic, partition, offset, "k", value, signer)

    def _msg(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: str,
        value: bytes | None,
        signer: Signer | None,
    ) -> Msg:
        """A consumed record, signed by ``signer`` (default: the fleet's, this worker's own
        key)."""
        headers = (signer or self.config.kafka.signer).headers(topic, key, value)
        return Msg(topic, partition, offset, key.encode(), value, headers)

    def apply(self, ctl: Control, now: float) -> None:
        """A decision read back from ``control``."""
        self.deliver(self.topics.control, ctl.agent_id, ctl.encode(), now)

    def controls(self) -> list[Control]:
        """Decisions written since the last call."""
        return [Control.decode(s.value) for s in self.outbox.take(self.topics.control)]

    def gauge(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """A metric's current value, by its exported name and labels."""
        return self.metrics.registry.get_sample_value(name, labels)
