"""The detection tick asks only about agents whose verdict may have changed (no Kafka).

The tick reads the real clock, so the agents' heartbeats are placed far in the past or at the
present, and the heartbeat timeout is long: nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Iterator
from typing import Any

import pytest

import streams.monitor as monitor_module
from agent_failover.config import KafkaConfig, MonitorConfig, Topics
from agent_failover.models import Control, ControlKind, DispatchReason, Heartbeat, Pool
from streams.fleet import FleetDirectory
from streams.liveness import LivenessTracker
from streams.metrics import MonitorMetrics
from streams.monitor import Monitor
from streams.state import AgentRecord

TOPICS = Topics(prefix="x.", agent_partitions=1)  # one partition: every agent is ours
TIMEOUT = 60.0  # long: the stall guard never trips on a loaded machine


@dataclasses.dataclass
class Msg:
    """A record of the faust agent's topics, as :meth:`Monitor.on_message` reads it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class HbMessage:
    """A consumed heartbeat, as confluent-kafka hands it to the liveness thread."""

    def __init__(self, agent: str, epoch: int, seq: int) -> None:
        self._value = Heartbeat(agent, epoch, seq, 1.5, 1.0, 2, (), Pool.ACTIVE).encode()

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes:
        return b""

    def partition(self) -> int:
        return 0

    def topic(self) -> str:
        return TOPICS.heartbeats


class NoProducer:
    def produce(self, topic: str, value: bytes, key: bytes | None) -> None:
        raise AssertionError("no dead letters expected")

    def poll(self, timeout: float) -> int:
        return 0


class Harness:
    def __init__(self, agents: int) -> None:
        config = MonitorConfig(
            kafka=KafkaConfig("127.0.0.1:9"), topics=TOPICS, heartbeat_timeout=TIMEOUT
        )
        self.sent: list[tuple[str, bytes]] = []
        self.liveness = LivenessTracker(config.kafka, TOPICS)  # never started: no thread
        self.liveness._assigned = frozenset({0})  # as the thread would after assign()
        self.ids = [f"agent-{n:04d}" for n in range(agents)]
        self.table: dict[str, AgentRecord] = {a: AgentRecord(a, 0, epoch=1) for a in self.ids}
        self.monitor = Monitor(
            config,
            self.table,
            self.liveness,
            MonitorMetrics(),
            self.send,
            None,
            FleetDirectory("w1", TOPICS.agent_partitions),
        )
        # Owned for long: no grace period in the way.
        self.monitor.owned_since[0] = time.monotonic() - 10 * TIMEOUT
        self.seq = 0

    async def send(self, topic: str, key: bytes, value: bytes, partition: int) -> Awaitable[Any]:
        self.sent.append((topic, value))
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ack.set_result(None)
        return ack

    def beat(self, agents: list[str], *, ago: float = 0.0, epoch: int = 1) -> None:
        self.seq += 1
        batch = [HbMessage(a, epoch, self.seq) for a in agents]
        self.liveness._handle(batch, time.monotonic() - ago, NoProducer())  # type: ignore[arg-type]

    def controls(self) -> list[Control]:
        out = [Control.decode(v) for t, v in self.sent if t == TOPICS.control]
        self.sent.clear()
        return out

    def tick(self) -> None:
        async def run() -> None:
            await self.monitor.tick({0}, busy=False)
            if self.monitor._publishing is not None:
                await self.monitor._publishing

        asyncio.run(run())

    def apply(self, ctl: Control) -> None:
        msg = Msg(TOPICS.control, 0, 1, ctl.agent_id.encode(), ctl.encode())
        asyncio.run(self.monitor.on_message(msg))


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The agent ids the tick asks dead_epochs about, in order."""
    calls: list[str] = []
    real = monitor_module.dead_epochs

    def counting(rec: Any, live: Any, *args: Any) -> Any:
        calls.append(rec.agent_id if rec is not None else live.agent_id)
        return real(rec, live, *args)

    monkeypatch.setattr(monitor_module, "dead_epochs", counting)
    yield calls


def test_after_the_first_tick_only_changed_or_silent_agents_are_asked(asked: list[str]) -> None:
    h = Harness(200)
    dead, *alive = h.ids
    h.beat([dead], ago=5 * TIMEOUT)  # silent for five timeouts
    h.beat(alive)
    h.tick()  # the first tick indexes the table and asks about everyone once
    assert len(asked) == 200
    (fence,) = h.controls()
    assert (fence.kind, fence.agent_id, fence.epoch) == (ControlKind.FENCE, dead, 1)
    assert fence.reason is DispatchReason.HEARTBEAT_TIMEOUT

    asked.clear()
    h.beat(alive)
    h.tick()  # the fence is written, not yet applied: asked again, not written again
    assert asked == [dead] and h.controls() == []

    h.apply(fence)
    asked.clear()
    h.tick()  # applied: its record changed, asked once more, nothing to decide
    assert asked == [dead] and h.controls() == []
    asked.clear()
    h.tick()  # fenced and silent: left alone
    assert asked == [] and h.controls() == []


def test_a_new_epoch_and_a_table_write_are_asked_about_at_the_next_tick(
    asked: list[str],
) -> None:
    h = Harness(50)
    h.beat(h.ids)
    h.tick()
    assert h.controls() == []
    restarted, stopped = h.ids[7], h.ids[9]
    h.beat([restarted], epoch=2)  # a new incarnation heartbeats: the old one is dead at once
    h.monitor._store(stopped, dataclasses.replace(h.table[stopped], stopped=(1,)))
    asked.clear()
    h.tick()
    assert sorted(asked) == [restarted, stopped]
    (ctl,) = h.controls()
    assert (ctl.agent_id, ctl.epoch, ctl.reason) == (restarted, 1, DispatchReason.RESTARTED)


def test_records_written_behind_the_monitors_back_are_indexed_again(asked: list[str]) -> None:
    h = Harness(10)
    h.beat(h.ids)
    h.tick()
    newcomer = "agent-late"
    h.table[newcomer] = AgentRecord(newcomer, 0, epoch=3)  # as changelog recovery would
    h.beat([newcomer], epoch=3, ago=5 * TIMEOUT)
    asked.clear()
    h.tick()
    assert newcomer in asked
    (ctl,) = h.controls()
    assert (ctl.agent_id, ctl.epoch) == (newcomer, 3)


def test_a_stalled_tick_decides_nothing(asked: list[str]) -> None:
    h = Harness(5)
    h.beat(h.ids, ago=5 * TIMEOUT)  # everyone looks silent...
    h.monitor._last_tick = time.monotonic() - TIMEOUT  # ...because the loop was starved
    asked.clear()
    h.tick()
    assert asked == [] and h.controls() == []
    assert h.monitor.owned_since[0] > time.monotonic() - TIMEOUT  # grace period restarted
