"""Targets: this worker's healthy agents, reused for a while but up to date for the agents
written since, then other workers'."""

from __future__ import annotations

import dataclasses

from agent_failover.config import Topics
from agent_failover.models import ControlKind, FleetAgent, FleetSummary, PlanEntry, Pool
from agent_failover.streams.dispatch import Candidate
from agent_failover.streams.fleet import FleetDirectory
from agent_failover.streams.index import RecordIndex
from agent_failover.streams.ownership import Ownership
from agent_failover.streams.state import AgentRecord, LiveEntry
from agent_failover.streams.targets import POOL_TTL, TargetPool
from tests.streams.factories import POLICY, live, slot
from tests.streams.harness import T0, Worker, agent_in

PARTITIONS = 4


A0, A1 = agent_in(0, PARTITIONS), agent_in(1, PARTITIONS)


def summary(monitor: str, partitions: tuple[int, ...], *agents: FleetAgent) -> FleetSummary:
    return FleetSummary(monitor_id=monitor, at=0.0, partitions=partitions, agents=agents)


class Pooled:
    """A :class:`TargetPool` over a heartbeat map the test sets, counting passes over it."""

    def __init__(self, *owned: int) -> None:
        self.lives: dict[str, LiveEntry] = {}
        self.passes = 0
        self.ownership = Ownership(PARTITIONS, 0.0)
        self.ownership.set(owned, 0.0)
        self.directory = FleetDirectory("me", PARTITIONS)
        self.table: dict[str, AgentRecord] = {}
        self.index = RecordIndex(self.table)
        self.index.rebuild(frozenset(owned))
        self.pool = TargetPool(
            POLICY, self.ownership, self.snapshot, self.live, self.index, self.directory
        )

    def live(self, agent_id: str) -> LiveEntry | None:
        return self.lives.get(agent_id)

    def snapshot(self) -> dict[str, LiveEntry]:
        self.passes += 1
        return dict(self.lives)


def test_local_candidates_are_reused_for_a_while_then_built_again() -> None:
    p = Pooled(0)
    p.lives[A0] = live(A0, last_seen=100.0)
    assert [c.agent_id for c in p.pool.local(100.0)] == [A0]
    p.lives[A0] = dataclasses.replace(p.lives[A0], draining=True)
    assert [c.agent_id for c in p.pool.local(100.0 + POOL_TTL / 2)] == [A0]  # reused
    assert p.passes == 1
    assert p.pool.local(100.0 + POOL_TTL) == []  # built again: draining is no target
    assert p.passes == 2


def test_only_owned_partitions_count_and_newer_offers_replace_older_ones() -> None:
    p = Pooled(0)
    p.lives = {A0: live(A0, last_seen=100.0), A1: live(A1, last_seen=100.0)}
    assert [c.agent_id for c in p.pool.local(100.0)] == [A0]  # A1's partition is not ours
    offered = [Candidate("from-summary", 1, Pool.ACTIVE, 2, 0)]
    p.pool.offer(offered, 100.05, p.index.version)  # a summary built after: planning reuses it
    assert p.pool.local(100.1) == offered
    p.pool.offer([], 99.0, p.index.version)  # an older one does not replace it
    assert p.pool.local(100.1) == offered
    p.pool.invalidate()
    assert [c.agent_id for c in p.pool.local(100.1)] == [A0]


def test_agents_written_since_the_pass_are_looked_at_again_at_once() -> None:
    p = Pooled(0)
    b0 = agent_in(0, PARTITIONS, skip=1)
    p.lives.update({A0: live(A0, last_seen=100.0), b0: live(b0, last_seen=100.0)})
    p.index.store(A0, AgentRecord(A0, 0, epoch=1, tasks={"t-1": slot("t-1")}))
    assert {c.agent_id: c.in_flight for c in p.pool.local(100.0)} == {A0: 1, b0: 0}
    # t-1 completes, b0 gets a dispatch: both show before the next pass (the same one is used).
    p.index.store(A0, AgentRecord(A0, 0, epoch=1, done=(("t-1", 1),)))
    p.index.store(b0, AgentRecord(b0, 0, epoch=1, tasks={"t-2": slot("t-2")}))
    assert {c.agent_id: c.in_flight for c in p.pool.local(100.05)} == {A0: 0, b0: 1}
    assert p.passes == 1


def test_the_pool_lists_own_agents_then_other_workers_agents() -> None:
    p = Pooled(0)
    p.lives[A0] = live(A0, last_seen=100.0)
    p.directory.receive(summary("w2", (1,), FleetAgent(A1, 7, 2, 0, Pool.STANDBY)), 100.0)
    assert [c.key for c in p.pool.pool(100.0)] == [(A0, 1), (A1, 7)]
    assert p.pool.remote_count(100.0) == 1


def test_a_worker_without_healthy_agents_fails_over_to_another_workers_agent() -> None:
    topics = Topics(prefix="x.", agent_partitions=PARTITIONS)
    victim, target = A0, A1
    # The victim said it stopped while holding a task: fenced at once.
    table = {
        victim: dataclasses.replace(
            AgentRecord(victim, 0, epoch=1, tasks={"t-1": slot("t-1")}), stopped=(1,)
        )
    }
    directory = FleetDirectory("w1", PARTITIONS)
    directory.receive(summary("w2", (1, 2, 3), FleetAgent(target, 7, 2, 0, Pool.ACTIVE)), T0)
    w = Worker(table, topics=topics, directory=directory)
    w.tick(T0 + 0.1)

    controls = w.controls()
    assert [(c.kind, c.agent_id, c.monitor_id) for c in controls] == [
        (ControlKind.FENCE, victim, "w1")
    ]
    assert controls[0].plan == (PlanEntry("t-1", 2, target, 7),)
    (own,) = w.outbox.take(topics.fleet)
    decoded = FleetSummary.decode(own.value)
    assert (decoded.monitor_id, decoded.partitions, decoded.agents) == ("w1", (0,), ())
    assert own.key == b"w1"
