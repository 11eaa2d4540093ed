"""Two monitor workers on a real broker: one is SIGKILLed, the other takes over its partitions,
fences the agent that died with it and no live one."""

from __future__ import annotations

import signal

import pytest

from agent_failover import models as m
from tests.streams.conftest import Fleet, MonitorHarness, task_event
from tests.streams.test_fleet_broker import agent_in

pytestmark = [pytest.mark.broker, pytest.mark.slow]

TIMEOUT = 90.0  # generous deadlines: two faust workers rebalancing on a loaded 2-core box


def test_a_survivor_takes_over_fences_the_dead_agent_and_spares_the_live_one(
    monitor_harness: MonitorHarness, fleet: Fleet
) -> None:
    h, t = monitor_harness, monitor_harness.topics
    every = frozenset(range(t.agent_partitions))
    env = {"AGENT_FAILOVER_HEARTBEAT_TIMEOUT": "2", "AGENT_FAILOVER_TICK_INTERVAL": "0.05"}
    (w1, _), (w2, theirs) = h.start_two_workers(TIMEOUT, **env)
    doomed = agent_in(theirs, "doomed", t.agent_partitions)
    alive = agent_in(theirs, "alive", t.agent_partitions)
    fleet.start(doomed, 101, 2, m.Pool.ACTIVE)
    fleet.start(alive, 202, 2, m.Pool.ACTIVE)
    h.send(t.task_events, doomed, task_event(m.EventKind.CLAIMED, doomed, 101, "t-1"))
    for agent_id in (doomed, alive):
        h.eventually(lambda a=agent_id: h.lists(w2, a), TIMEOUT, f"w2 hearing {agent_id}")

    # The agent dies, then its worker: only w2 ever heard the agent's last heartbeat.
    fleet.kill(doomed)
    h.procs["w2"].signal(signal.SIGKILL)
    h.procs["w2"].wait(10)
    del h.procs["w2"]  # the harness fails a wait when a worker it knows of has exited

    def fence_of_doomed() -> m.Control | None:
        controls = h.records(t.control, m.Control.decode)
        return next((c for c in controls if c.kind is m.ControlKind.FENCE), None)

    fence = h.eventually(fence_of_doomed, TIMEOUT, "the fence of the agent that died")
    assert (fence.agent_id, fence.epoch, fence.monitor_id) == (doomed, 101, w1)
    assert [(e.task_id, e.attempt) for e in fence.plan] == [("t-1", 2)]
    assert "deciding on partitions" in h.log_text("w1").split("took over partition")[-1]
    # The survivor hears the live agent and reports it healthy: by then it has decided on every
    # partition for longer than a timeout, and fenced nobody else.
    h.eventually(lambda: h.lists(w1, alive), TIMEOUT, "w1 hearing the live agent")
    h.eventually(
        lambda: set(h.summaries()[w1].partitions) == every, TIMEOUT, "w1 owning everything"
    )
    controls = h.records(t.control, m.Control.decode, to_end=True)
    fences = [(c.agent_id, c.epoch) for c in controls if c.kind is m.ControlKind.FENCE]
    assert fences == [(doomed, 101)]
