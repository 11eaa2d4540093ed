"""The monitor process against a real broker, fed by a producer that plays the agents."""

from __future__ import annotations

import pytest

from agent_failover import models as m
from tests.streams.conftest import Fleet, MonitorHarness, claimed_and_checkpointed, task_event

pytestmark = [pytest.mark.broker, pytest.mark.slow]

TIMEOUT = 60.0  # generous deadlines: a loaded 2-core box is slow, never wrong


def test_dead_agent_is_fenced_once_and_its_task_resumes_from_its_checkpoint(
    monitor_harness: MonitorHarness, fleet: Fleet
) -> None:
    h, t = monitor_harness, monitor_harness.topics
    fleet.start("agent-a", 101, 2, m.Pool.ACTIVE)
    fleet.start("agent-b", 202, 2, m.Pool.STANDBY)
    fleet.start("agent-c", 303, 2, m.Pool.ACTIVE)
    ref = claimed_and_checkpointed(h, "agent-a", 101, "t-1")

    h.start_monitor(AGENT_FAILOVER_HEARTBEAT_TIMEOUT="2", AGENT_FAILOVER_TICK_INTERVAL="0.05")
    h.eventually(lambda: "heartbeat partitions: [0" in h.log_text(), TIMEOUT, "monitor up")
    fleet.kill("agent-a")

    def redispatches() -> list[m.Redispatch]:
        return h.records(t.priority, m.Redispatch.decode)

    (rd,) = h.eventually(redispatches, TIMEOUT, "the re-dispatch of t-1")
    assert (rd.task_id, rd.attempt, rd.checkpoint) == ("t-1", 2, ref)
    assert (rd.target_agent_id, rd.target_epoch) == ("agent-b", 202)  # the ready standby
    assert (rd.from_agent_id, rd.from_epoch) == ("agent-a", 101)
    assert rd.reason is m.DispatchReason.HEARTBEAT_TIMEOUT

    # Graceful hand-off from agent-c: re-dispatched at once, with the released checkpoint.
    c_ref = m.CheckpointRef(partition=0, offset=9, step=1, task_id="t-2", attempt=1, epoch=303)
    h.send(t.task_events, "agent-c", task_event(m.EventKind.CLAIMED, "agent-c", 303, "t-2"))
    h.send(
        t.task_events,
        "agent-c",
        task_event(m.EventKind.RELEASED, "agent-c", 303, "t-2", checkpoint=c_ref),
    )
    h.eventually(
        lambda: [r for r in redispatches() if r.task_id == "t-2"], TIMEOUT, "t-2 re-dispatched"
    )
    everything = h.records(t.priority, m.Redispatch.decode, to_end=True)
    assert [r.task_id for r in everything] == ["t-1", "t-2"]  # each moved once
    released = everything[1:]
    assert [(r.attempt, r.checkpoint, r.reason) for r in released] == [
        (2, c_ref, m.DispatchReason.RELEASED)
    ]
    assert released[0].target_agent_id == "agent-b"

    # By now the monitor has run many ticks past the fence: still exactly one decision for it.
    controls = h.records(t.control, m.Control.decode, to_end=True)
    fences = [c for c in controls if c.kind is m.ControlKind.FENCE]
    assert [(c.agent_id, c.epoch) for c in fences] == [("agent-a", 101)]
    assert fences[0].plan == (m.PlanEntry("t-1", 2, "agent-b", 202, ref),)
    audits = h.eventually(
        lambda: h.records(t.failovers, m.Failover.decode), TIMEOUT, "audit records"
    )
    assert fences[0].decision_id in {a.decision_id for a in audits}
    letters = h.eventually(
        lambda: h.records(t.dead_letter, m.DeadLetter.decode), TIMEOUT, "the dead letter"
    )
    assert letters[0].topic == t.task_events and "not JSON" in letters[0].reason
    assert h.proc is not None and h.proc.alive  # still running
