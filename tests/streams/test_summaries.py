"""The fleet summary and the health gauges: when they go out, and what they say."""

from __future__ import annotations

import asyncio
import dataclasses
import time

from agent_failover.config import Topics
from agent_failover.models import FleetSummary, Pool
from agent_failover.streams.detection import Health
from agent_failover.streams.dispatch import Candidate, free_by_pool
from agent_failover.streams.fleet import PUBLISH_INTERVAL
from agent_failover.streams.state import AgentRecord, FencedEpoch, LiveEntry, SlotStatus
from agent_failover.streams.summaries import (
    FAILED_FOR,
    HEALTH_INTERVAL,
    HealthCount,
    SummaryPublisher,
    count_health,
)
from tests.streams.factories import POLICY, live, record, slot
from tests.streams.harness import T0, Worker, agent_in

TOPICS = Topics(prefix="x.", agent_partitions=2)


def published(w: Worker) -> list[FleetSummary]:
    return [FleetSummary.decode(s.value) for s in w.outbox.take(TOPICS.fleet)]


def run(publisher: SummaryPublisher, *calls: tuple[str, frozenset[int] | None, float]) -> None:
    """Call the publisher as ticks would, each call's jobs finished before the next call."""

    async def go() -> None:
        for kind, partitions, now in calls:
            if kind == "fleet":
                assert partitions is not None
                publisher.publish_fleet(partitions, now)
            else:
                publisher.publish_health(now)
            await publisher.wait()

    asyncio.run(go())


def test_the_fleet_summary_goes_out_every_interval_and_at_once_on_a_partition_change() -> None:
    w = Worker({}, topics=TOPICS)
    a = agent_in(0, 2)
    w.live.beat([a], T0)
    w.monitor.reservations.reserve((a, 1), "t-9", T0, local=True)
    p = frozenset({0})
    run(w.monitor.publisher, ("fleet", p, T0), ("fleet", p, T0 + PUBLISH_INTERVAL / 2))
    (first,) = published(w)
    assert (first.monitor_id, first.partitions) == ("w1", (0,))
    assert [(x.agent_id, x.in_flight) for x in first.agents] == [(a, 1)]  # reserved: load
    run(w.monitor.publisher, ("fleet", frozenset({0, 1}), T0 + PUBLISH_INTERVAL / 2))
    assert [s.partitions for s in published(w)] == [(0, 1)]  # changed: at once
    run(w.monitor.publisher, ("fleet", frozenset({0, 1}), T0 + PUBLISH_INTERVAL * 1.5))
    assert len(published(w)) == 1


def test_health_gauges_are_counted_once_a_second() -> None:
    w = Worker(
        {"gone": dataclasses.replace(AgentRecord("gone", 0, epoch=1), stopped=(1,))}, topics=TOPICS
    )
    w.live.beat(["fine"], T0 - 0.1)
    w.tick(T0, owned=(0, 1))  # indexes the table; counts once

    def healthy() -> float | None:
        return w.gauge("agent_failover_agents", {"state": "healthy", "pool": "active"})

    stopped = w.gauge("agent_failover_agents", {"state": "stopped", "pool": "active"})
    assert healthy() == 1 and stopped == 1
    w.live.beat(["fine", "new"], T0 + 0.5)
    run(w.monitor.publisher, ("health", None, T0 + HEALTH_INTERVAL / 2))
    assert healthy() == 1  # not yet due
    run(w.monitor.publisher, ("health", None, T0 + HEALTH_INTERVAL))
    assert healthy() == 2


def test_count_health_counts_owned_agents_by_their_newest_epoch() -> None:
    lives = {
        "ok": live("ok", last_seen=99.9),
        "late": live("late", last_seen=98.0),  # degraded after 1 s
        "dead": live("dead", last_seen=96.0),
        "elsewhere": live("elsewhere", last_seen=99.9),
    }
    records = {"quit": dataclasses.replace(record("quit"), stopped=(1,)), "ok": record("ok")}
    partition = {"elsewhere": 1}
    count = count_health(
        lives, records, {0: 0.0}, lambda a: partition.get(a, 0), lambda a: None, 100.0, POLICY, 0.0
    )
    assert count.agents == {
        (Health.HEALTHY, Pool.ACTIVE): 1,
        (Health.DEGRADED, Pool.ACTIVE): 1,
        (Health.FAILED, Pool.ACTIVE): 1,
        (Health.STOPPED, Pool.ACTIVE): 1,
    }
    assert count.oldest_progress_at is None


def count(lives: dict[str, LiveEntry], records: dict[str, AgentRecord], wall: float) -> HealthCount:
    return count_health(lives, records, {0: 0.0}, lambda a: 0, lambda a: None, 100.0, POLICY, wall)


def test_a_fenced_agent_stays_failed_for_a_while_unless_it_comes_back() -> None:
    fenced = dataclasses.replace(record("z"), fenced=(FencedEpoch(1, "d", 1000.0, 3.2),))
    standby = {"z": live("z", last_seen=90.0, pool=Pool.STANDBY)}  # its last heartbeat
    assert count(standby, {"z": fenced}, 1000.0 + FAILED_FOR - 1).agents == {
        (Health.FAILED, Pool.STANDBY): 1
    }
    assert count(standby, {"z": fenced}, 1000.0 + FAILED_FOR).agents == {
        (Health.STOPPED, Pool.STANDBY): 1
    }
    back = {"z": live("z", epoch=2, last_seen=99.9)}  # a new epoch: healthy again
    assert count(back, {"z": fenced}, 1001.0).agents == {(Health.HEALTHY, Pool.ACTIVE): 1}
    said_stopped = dataclasses.replace(fenced, stopped=(1,))
    assert count({}, {"z": said_stopped}, 1001.0).agents == {(Health.STOPPED, Pool.ACTIVE): 1}


def test_the_oldest_progress_is_that_of_the_running_tasks() -> None:
    running = record(
        "a",
        slots=(
            slot("t-1", progress_at=50.0),
            slot("t-2", progress_at=40.0, status=SlotStatus.QUEUED),  # not running
            slot("t-3", progress_at=None),  # written before the time was kept
        ),
    )
    other = record("b", slots=(slot("t-4", progress_at=45.0),))
    lives = {"a": live("a", last_seen=99.9), "b": live("b", last_seen=99.9)}
    assert count(lives, {"a": running, "b": other}, 60.0).oldest_progress_at == 45.0


def test_free_slots_count_capacity_minus_held_and_placed_by_pool() -> None:
    local = [
        Candidate("a", 1, Pool.ACTIVE, 4, 1),
        Candidate("b", 1, Pool.ACTIVE, 2, 3),  # over-full: counts 0, not -1
        Candidate("s", 1, Pool.STANDBY, 2, 0),
    ]
    assert free_by_pool(local, {("a", 1): 2}) == {Pool.ACTIVE: 1, Pool.STANDBY: 2}
    assert free_by_pool([], {}) == {Pool.ACTIVE: 0, Pool.STANDBY: 0}


def test_the_summary_pass_publishes_free_slots_and_the_health_pass_the_checkpoint_age() -> None:
    now_wall = time.time()
    a = agent_in(0, 2)
    w = Worker({a: record(a, slots=(slot("t-1", progress_at=now_wall - 30.0),))}, topics=TOPICS)
    w.live.beat([a], T0)  # capacity 2, holding t-1 in the table: one free slot
    w.tick(T0, owned=(0, 1))
    assert w.gauge("agent_failover_agent_free_slots", {"pool": "active"}) == 1
    age = w.gauge("agent_failover_oldest_checkpoint_age_seconds")
    assert age is not None and 30.0 <= age < 30.0 + (time.time() - now_wall) + 1.0
