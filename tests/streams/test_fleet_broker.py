"""Two monitor workers on a real broker: a failover targets an agent the other worker owns."""

from __future__ import annotations

import pytest

from agent_failover import models as m
from agent_failover.partitioner import partition_for
from tests.streams.conftest import Fleet, MonitorHarness, task_event

pytestmark = [pytest.mark.broker, pytest.mark.slow]

TIMEOUT = 90.0  # generous deadlines: two faust workers rebalancing on a loaded 2-core box


def agent_in(partitions: frozenset[int], prefix: str, count: int) -> str:
    """An agent id whose key hashes into ``partitions``."""
    return next(
        f"{prefix}-{n}" for n in range(1000) if partition_for(f"{prefix}-{n}", count) in partitions
    )


def test_a_worker_without_healthy_agents_moves_tasks_to_another_workers_agent(
    monitor_harness: MonitorHarness, fleet: Fleet
) -> None:
    h, t = monitor_harness, monitor_harness.topics
    env = {"AGENT_FAILOVER_HEARTBEAT_TIMEOUT": "2", "AGENT_FAILOVER_TICK_INTERVAL": "0.05"}
    # Agents are chosen only once the workers have split the partitions: the victim's worker
    # owns no other agent, the only healthy agent belongs to the other worker.
    (w1, mine), (w2, theirs) = h.start_two_workers(TIMEOUT, **env)
    victim = agent_in(mine, "victim", t.agent_partitions)
    target = agent_in(theirs, "target", t.agent_partitions)
    fleet.start(victim, 101, 2, m.Pool.ACTIVE)
    fleet.start(target, 202, 2, m.Pool.ACTIVE)
    h.send(t.task_events, victim, task_event(m.EventKind.CLAIMED, victim, 101, "t-1"))

    h.eventually(lambda: h.lists(w2, target), TIMEOUT, f"{w2} listing {target} as healthy")
    h.eventually(lambda: h.lists(w1, victim), TIMEOUT, f"{w1} seeing {victim}'s heartbeats")
    fleet.kill(victim)

    (rd,) = h.eventually(
        lambda: h.records(t.priority, m.Redispatch.decode), TIMEOUT, "the re-dispatch of t-1"
    )
    assert (rd.task_id, rd.attempt) == ("t-1", 2)
    assert (rd.target_agent_id, rd.target_epoch) == (target, 202)
    assert (rd.from_agent_id, rd.from_epoch) == (victim, 101)
    # Decided by the victim's own worker, which owns no healthy agent: the target came from the
    # fleet directory, not from a local heartbeat.
    controls = h.records(t.control, m.Control.decode, to_end=True)
    (decision,) = [c for c in controls if c.decision_id == rd.decision_id]
    assert decision.monitor_id == w1
    fences = [(c.agent_id, c.epoch) for c in controls if c.kind is m.ControlKind.FENCE]
    assert fences == [(victim, 101)]
