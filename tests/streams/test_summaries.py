"""The fleet summary and the health gauges: when they go out, and what they say."""

from __future__ import annotations

import asyncio
import dataclasses

from agent_failover.config import Topics
from agent_failover.models import FleetSummary
from streams.detection import Health
from streams.fleet import PUBLISH_INTERVAL
from streams.state import AgentRecord
from streams.summaries import HEALTH_INTERVAL, SummaryPublisher, count_health
from tests.streams.factories import POLICY, live, record
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
        return w.gauge("agent_failover_agents", {"state": "healthy"})

    assert healthy() == 1 and w.gauge("agent_failover_agents", {"state": "stopped"}) == 1
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
    counts = count_health(
        lives, records, {0: 0.0}, lambda a: partition.get(a, 0), lambda a: None, 100.0, POLICY
    )
    assert counts == {Health.HEALTHY: 1, Health.DEGRADED: 1, Health.FAILED: 1, Health.STOPPED: 1}
