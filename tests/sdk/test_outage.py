"""A broker outage pauses an agent's work instead of failing it (on the in-memory transport,
whose outage holds every write unanswered, as librdkafka does while it reconnects)."""

from __future__ import annotations

import threading

from agent_failover import models as m
from agent_failover.dev.waiting import eventually
from agent_failover.sdk import Agent, TaskContext
from agent_failover.sdk.health import AgentStatus
from agent_failover.sdk.testing import MemoryTransport

WAIT = 30.0  # only a failure waits this long


def test_a_task_pauses_through_an_outage_longer_than_the_lease_and_completes() -> None:
    transport = MemoryTransport()
    in_step = threading.Event()
    resume = threading.Event()
    guarding = threading.Event()
    down = threading.Event()  # set while the outage lasts
    acted: list[tuple[int, bool]] = []  # each step's side effect, and whether the broker was gone

    def handler(ctx: TaskContext) -> int:
        for step in range(ctx.next_step, 4):
            if step == 2:
                in_step.set()
                resume.wait(WAIT)  # the outage begins while this step runs
                guarding.set()
            ctx.guard()
            acted.append((step, down.is_set()))
            ctx.progress(step, {"step": step})
        return len(acted)

    def gone(agent: Agent) -> AgentStatus | None:
        status = agent.status()
        return None if status.lease_valid or status.broker_reachable else status

    config = transport.config(heartbeat_interval=0.05, heartbeat_timeout=0.5)
    with Agent(config, handler, transport=transport) as agent:
        submission = transport.dispatch(m.Task(task_id="t-1", task_type="test"))
        assert in_step.wait(WAIT)
        with transport.outage():
            down.set()
            status = eventually(lambda: gone(agent), WAIT, "the broker to be gone, the lease out")
            assert not status.fenced and status.running == ("t-1",)
            resume.set()  # the step reaches its guard: it waits there, it neither acts nor fails
            assert guarding.wait(WAIT)
            down.clear()
        assert submission.result(timeout=WAIT) == 4
        assert agent.status().broker_reachable and agent.status().lease_valid
    assert acted == [(0, False), (1, False), (2, False), (3, False)]
    kinds = [e.kind for e in transport.events("t-1")]
    assert m.EventKind.FAILED not in kinds and m.EventKind.RELEASED not in kinds
    assert [c.step for c in transport.checkpoints("t-1")] == [0, 1, 2, 3]
