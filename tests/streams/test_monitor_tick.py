"""The detection tick asks only about agents whose verdict may have changed (no Kafka).

The monitor's clock is passed in, so every test runs on plain numbers: nothing here depends on
how fast the machine is.
"""

from __future__ import annotations

import dataclasses

from agent_failover.config import Topics
from agent_failover.models import ControlKind, DispatchReason, FleetSummary
from agent_failover.streams.monitor import Skipped
from agent_failover.streams.state import AgentRecord
from tests.streams.factories import slot
from tests.streams.harness import T0, Worker, agent_in

TOPICS = Topics(prefix="x.", agent_partitions=1)  # one partition: every agent is ours
TIMEOUT = 3.0


def worker(agents: int, *, grace: float | None = 0.0) -> tuple[Worker, list[str]]:
    ids = [f"agent-{n:04d}" for n in range(agents)]
    table = {a: AgentRecord(a, 0, epoch=1) for a in ids}
    return Worker(table, topics=TOPICS, timeout=TIMEOUT, grace=grace), ids


def test_after_the_first_tick_only_changed_or_silent_agents_are_asked() -> None:
    w, ids = worker(200)
    dead, *alive = ids
    start = T0 - TIMEOUT
    w.live.beat(ids, start)  # everyone heard as the worker takes over
    report = w.tick(start)  # the first tick indexes the table and asks about everyone once
    assert len(report.examined) == 200 and w.controls() == []
    for step in range(1, 6):  # the others keep beating; nobody changed, nobody silent yet
        now = start + step * 0.5
        w.live.beat(alive, now)
        assert w.tick(now).examined == ()
    w.live.beat(alive, T0)
    report = w.tick(T0)  # silent for a whole timeout: asked, and fenced
    assert report.examined == (dead,)
    (fence,) = w.controls()
    assert (fence.kind, fence.agent_id, fence.epoch) == (ControlKind.FENCE, dead, 1)
    assert fence.reason is DispatchReason.HEARTBEAT_TIMEOUT

    w.live.beat(alive, T0 + 0.05)
    report = w.tick(T0 + 0.05)  # the fence is written, not yet applied: asked, not written again
    assert report.examined == (dead,) and w.controls() == []

    w.apply(fence, T0 + 0.06)
    report = w.tick(T0 + 0.1)  # applied: its record changed, asked once more, nothing to decide
    assert report.examined == (dead,) and w.controls() == []
    report = w.tick(T0 + 0.15)  # fenced and silent: left alone
    assert report.examined == () and w.controls() == []


def test_a_tick_reports_its_duration_the_partitions_owned_and_the_timeout() -> None:
    w, _ = worker(3, grace=2.0)
    w.tick(T0)
    w.tick(T0 + 0.05)
    assert w.gauge("agent_failover_tick_duration_seconds_count") == 2
    assert w.gauge("agent_failover_partitions_owned") == 1
    assert w.gauge("agent_failover_heartbeat_timeout_seconds") == TIMEOUT
    assert w.monitor.grace_left(T0 + 0.5) == 1.5
    assert w.monitor.grace_left(T0 + 2.5) == 0.0
    w.tick(T0 + 0.1, owned=())
    assert w.gauge("agent_failover_partitions_owned") == 0
    assert w.monitor.grace_left(T0 + 0.1) == 0.0


def test_a_new_epoch_and_a_table_write_are_asked_about_at_the_next_tick() -> None:
    w, ids = worker(50)
    w.live.beat(ids, T0)
    w.tick(T0)
    assert w.controls() == []
    restarted, stopped = ids[7], ids[9]
    w.live.beat([restarted], T0 + 0.05, epoch=2)  # a new incarnation: the old one is dead at once
    w.monitor.index.store(stopped, dataclasses.replace(w.table[stopped], stopped=(1,)))
    report = w.tick(T0 + 0.1)
    assert report.examined == (restarted, stopped)
    (ctl,) = w.controls()
    assert (ctl.agent_id, ctl.epoch, ctl.reason) == (restarted, 1, DispatchReason.RESTARTED)


def test_records_written_behind_the_monitors_back_are_indexed_again() -> None:
    w, ids = worker(10)
    w.live.beat(ids, T0)
    w.tick(T0)
    newcomer = "agent-late"
    # As changelog recovery would: a stopped epoch that kept a task, known from the table only.
    w.table[newcomer] = AgentRecord(
        newcomer, 0, epoch=3, stopped=(3,), tasks={"t-1": slot("t-1", epoch=3)}
    )
    report = w.tick(T0 + 0.1)
    assert newcomer in report.examined
    (ctl,) = w.controls()
    assert (ctl.agent_id, ctl.epoch, ctl.reason) == (newcomer, 3, DispatchReason.STOPPED)


def test_a_first_heartbeat_that_never_comes_is_found_by_its_deadline() -> None:
    w, ids = worker(3)
    w.live.beat(ids, T0)
    w.tick(T0)
    late = "agent-new"
    w.monitor.index.store(late, AgentRecord(late, 0, epoch=1))  # agent_started, no heartbeat yet
    assert w.tick(T0 + 0.1).examined == (late,)  # first seen at T0 + 0.1: a timeout from there
    for now in (T0 + 1.0, T0 + 2.0, T0 + 3.0):
        w.live.beat(ids, now)
        assert w.tick(now).examined == ()
    assert w.tick(T0 + 3.2).examined == (late,)  # its deadline passed, though it was never silent
    (ctl,) = w.controls()
    assert (ctl.agent_id, ctl.reason) == (late, DispatchReason.HEARTBEAT_TIMEOUT)


def test_a_stalled_tick_decides_nothing_and_liveness_restarts_at_its_end() -> None:
    w, ids = worker(5)
    w.live.beat(ids, T0 - 5 * TIMEOUT)
    w.tick(T0 - 5 * TIMEOUT)
    report = w.tick(T0)  # everyone looks silent because the loop was starved for five timeouts
    assert report.skipped is Skipped.STALLED and report.examined == ()
    assert w.controls() == []
    assert w.monitor.ownership.since == {0: T0}  # silence now counts from the stall's end
    for step in range(1, 6):  # a tick every half second: no heartbeat unread can be missed...
        w.tick(T0 + step * 0.5)
        assert w.controls() == []
    w.tick(T0 + TIMEOUT)  # ...until a whole timeout has passed since the stall
    assert sorted(c.agent_id for c in w.controls()) == ids


def test_a_lagging_heartbeat_reader_stops_decisions_without_restarting_liveness() -> None:
    w, ids = worker(2)
    dead, alive = ids
    w.live.beat(ids, T0)
    w.tick(T0)
    w.live.lag_s = 1.5  # more than the stall limit (1 s at a 3 s timeout) behind the topic
    for now in (T0 + 1.0, T0 + 2.0, T0 + 3.0, T0 + 3.5):
        assert w.tick(now).skipped is Skipped.LAGGING
    assert w.controls() == []
    w.live.lag_s = 0.2  # caught up: what it read is current, the silent agent is fenced at once
    w.live.beat([alive], T0 + 3.9)
    w.tick(T0 + 4.0)
    (ctl,) = w.controls()
    assert (ctl.agent_id, ctl.reason) == (dead, DispatchReason.HEARTBEAT_TIMEOUT)
    assert w.monitor.ownership.since == {0: T0}


def test_a_quiet_broker_stops_decisions_and_everyone_ages_from_its_return() -> None:
    w, ids = worker(2)
    dead, alive = ids
    w.live.beat(ids, T0)
    w.tick(T0)
    w.live.broker_up = False  # the broker goes away: no heartbeat reaches the reader any more
    assert w.tick(T0 + 1.0).skipped is None  # within a healthy broker's silence: deciding
    for k in range(4, 61):  # beyond it (ticks every half second): heartbeats may be missing
        assert w.tick(T0 + k * 0.5).skipped is Skipped.BROKER
    assert w.controls() == []  # nobody fenced for heartbeats that could not arrive
    assert w.monitor.ownership.since == {0: T0 + 30.0}
    w.live.broker_up = True
    for now in (T0 + 30.5, T0 + 31.0, T0 + 31.5, T0 + 32.0, T0 + 32.5, T0 + 32.9):
        w.live.beat([alive], now)
        assert w.tick(now).skipped is None
    assert w.controls() == []  # the silent agent gets a whole timeout after the broker's return
    w.tick(T0 + 33.1)
    (ctl,) = w.controls()
    assert (ctl.agent_id, ctl.reason) == (dead, DispatchReason.HEARTBEAT_TIMEOUT)


def test_a_partition_counts_as_taken_over_once_its_heartbeats_are_read_to_the_end() -> None:
    topics = Topics(prefix="x.", agent_partitions=2)
    mine, taken = agent_in(0, 2), agent_in(1, 2)
    table = {a: AgentRecord(a, p, epoch=1) for a, p in ((mine, 0), (taken, 1))}
    w = Worker(table, topics=topics, timeout=TIMEOUT)
    w.live.beat([mine], T0)
    for now in (T0, T0 + 0.5, T0 + 1.0, T0 + 1.5):
        w.tick(now, owned=(0,))
    # The other worker died; its partition comes at T0 + 2, read to its end by the next tick.
    assert w.tick(T0 + 2.0, owned=(0, 1), caught_up=False).skipped is Skipped.ASSIGNING
    assert w.monitor.ownership.since == {0: T0, 1: T0 + 2.0}
    w.tick(T0 + 2.05, owned=(0, 1))  # read to its end since the last tick: owned from now
    assert w.monitor.ownership.since == {0: T0, 1: T0 + 2.05}
    w.tick(T0 + 2.5, owned=(0, 1))
    assert w.monitor.ownership.since == {0: T0, 1: T0 + 2.05}
    w.tick(T0 + 3.0, owned=(0, 1))  # this worker's own dead agent: fenced on time
    assert [c.agent_id for c in w.controls()] == [mine]
    for now in (T0 + 3.5, T0 + 4.0, T0 + 4.5, T0 + 5.0):
        w.tick(now, owned=(0, 1))
    # The taken agent could still be heard: it is silent from when this worker could first hear
    # it (the tick at T0 + 2.05).
    assert w.controls() == []
    w.tick(T0 + 5.05, owned=(0, 1))
    assert [c.agent_id for c in w.controls()] == [taken]


def test_a_busy_or_unassigned_worker_decides_nothing_and_indexes_again_after() -> None:
    w, ids = worker(2)
    first, second = ids
    w.live.beat(ids, T0)
    assert w.tick(T0, caught_up=False).skipped is Skipped.ASSIGNING  # heartbeats not read yet
    assert w.tick(T0 + 0.1).examined == (first, second)
    assert w.tick(T0 + 0.2, busy=True).skipped is Skipped.BUSY
    # Recovery rewrote a record (same table size): the index must be rebuilt all the same.
    w.table[first] = dataclasses.replace(w.table[first], stopped=(1,))
    assert w.tick(T0 + 0.3).examined == (first, second)
    for now in (T0 + 1.0, T0 + 2.0, T0 + 3.0, T0 + 3.5):  # both fall silent
        w.tick(now)
    (ctl,) = w.controls()  # the stopped one holds nothing: only the other is fenced
    assert (ctl.agent_id, ctl.reason) == (second, DispatchReason.HEARTBEAT_TIMEOUT)


def test_a_worker_without_partitions_retracts_its_fleet_claims() -> None:
    w, ids = worker(2)
    w.live.beat(ids, T0)
    w.tick(T0)
    (summary,) = w.outbox.take(TOPICS.fleet)
    assert FleetSummary.decode(summary.value).partitions == (0,)
    assert w.tick(T0 + 0.1, owned=()).skipped is Skipped.UNOWNED
    (summary,) = w.outbox.take(TOPICS.fleet)
    assert FleetSummary.decode(summary.value).partitions == ()
