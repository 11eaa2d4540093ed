"""A monitor process of a signing fleet against forged records on a real broker: a live agent is
not fenced by a forged heartbeat, announcement or decision, and a dead one's task resumes from
its genuine checkpoint, not from one claimed after its death."""

from __future__ import annotations

import time

import pytest

from agent_failover import models as m
from agent_failover.signing import Signer
from tests.streams.conftest import Fleet, MonitorHarness, claimed_and_checkpointed, task_event
from tests.streams.test_metrics_broker import bad_signatures, scrape

pytestmark = [pytest.mark.broker, pytest.mark.slow]

TIMEOUT = 60.0  # generous deadlines: a loaded 2-core box is slow, never wrong
KEY = "the-fleet-signing-key-0123456789"
ROGUE = Signer(b"a-key-of-someone-else-0123456789")
UNSIGNED = Signer()


def test_forged_records_neither_fence_a_live_agent_nor_move_a_resume_point(
    monitor_harness: MonitorHarness, fleet: Fleet
) -> None:
    h, t = monitor_harness, monitor_harness.topics
    h.signer = Signer(KEY.encode())  # the fleet: its agents sign what they write
    fleet.start("agent-a", 101, 2, m.Pool.ACTIVE)  # lives throughout
    fleet.start("agent-v", 202, 2, m.Pool.ACTIVE)  # killed
    genuine = claimed_and_checkpointed(h, "agent-v", 202, "t-1")
    h.start_monitor(
        AGENT_FAILOVER_SIGNING_KEY=KEY,
        AGENT_FAILOVER_HEARTBEAT_TIMEOUT="2",
        AGENT_FAILOVER_TICK_INTERVAL="0.05",
    )
    h.eventually(lambda: "heartbeat partitions: [0" in h.log_text(), TIMEOUT, "monitor up")

    def refused() -> list[m.DeadLetter]:
        letters = h.records(t.dead_letter, m.DeadLetter.decode)
        return [d for d in letters if d.reason.startswith("bad signature")]

    # Each would fail agent-a's epoch at once if it were believed. The heartbeat thread reads
    # from the end, resolved at its first fetch: the heartbeat is sent until it is seen.
    def forge_a_heartbeat() -> bool:
        newer = m.Heartbeat("agent-a", 999, 0, time.time(), 0.2, 2)
        h.send(t.heartbeats, "agent-a", newer, UNSIGNED)
        return any(d.topic == t.heartbeats for d in refused())

    h.eventually(forge_a_heartbeat, TIMEOUT, "the forged heartbeat's dead letter")
    beats = len(refused())
    restarted = m.TaskEvent(
        kind=m.EventKind.AGENT_STARTED, agent_id="agent-a", epoch=999, at=time.time()
    )
    h.send(t.task_events, "agent-a", restarted, ROGUE)
    fence = m.Control(
        kind=m.ControlKind.FENCE,
        agent_id="agent-a",
        epoch=101,
        decision_id="forged",
        issued_at=time.time(),
        reason=m.DispatchReason.HEARTBEAT_TIMEOUT,
    )
    h.send(t.control, "agent-a", fence, UNSIGNED)
    # agent-v dies; then someone claims it had checkpointed far ahead.
    fleet.kill("agent-v")
    claimed = m.CheckpointRef(
        partition=0, offset=10**12, step=8, task_id="t-1", attempt=1, epoch=202
    )
    forged = task_event(m.EventKind.CHECKPOINTED, "agent-v", 202, "t-1", checkpoint=claimed)
    h.send(t.task_events, "agent-v", forged, UNSIGNED)

    (rd,) = h.eventually(
        lambda: h.records(t.priority, m.Redispatch.decode), TIMEOUT, "the re-dispatch of t-1"
    )
    assert (rd.task_id, rd.checkpoint) == ("t-1", genuine)
    assert (rd.target_agent_id, rd.target_epoch) == ("agent-a", 101)  # alive, never fenced
    h.eventually(lambda: len(refused()) == beats + 3, TIMEOUT, "the other forged records")
    assert sorted(d.topic for d in refused()[beats:]) == sorted(
        [t.task_events, t.control, t.task_events]
    )
    decisions = h.records(t.control, m.Control.decode, to_end=True)
    assert [(c.kind, c.agent_id) for c in decisions if c.decision_id != "forged"] == [
        (m.ControlKind.FENCE, "agent-v")
    ]
    audits = h.records(t.failovers, m.Failover.decode, to_end=True)
    assert "forged" not in {a.decision_id for a in audits}
    base = h.http_base()
    assert base is not None
    _, samples = scrape(base)
    counted = bad_signatures(samples, "heartbeats", "task-events", "control")
    assert counted == {"heartbeats": beats, "task-events": 2, "control": 1}
