"""The intake and the assigner: new work placed on free active agents, failover work first, one
decision forwarded per task record, nothing left behind."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable

import pytest

from agent_failover.config import Topics
from agent_failover.models import (
    ControlKind,
    DeadLetter,
    DispatchReason,
    EventKind,
    FleetAgent,
    FleetSummary,
    Pool,
    Redispatch,
    SourceRef,
)
from agent_failover.streams.fleet import FleetDirectory
from agent_failover.streams.state import AgentRecord, FencedEpoch, SlotStatus
from tests.streams.factories import event, new_work, record, slot, task
from tests.streams.harness import T0, Worker

TOPICS = Topics(prefix="x.", agent_partitions=1, task_partitions=2)


def worker(table: dict[str, AgentRecord] | None = None) -> Worker:
    w = Worker(table if table is not None else {}, topics=TOPICS)
    w.feed.partitions = frozenset({0, 1})
    return w


def decisions(w: Worker) -> list[Redispatch]:
    return [Redispatch.decode(s.value) for s in w.outbox.take(TOPICS.assigned)]


async def placed(placing: asyncio.Future[None]) -> None:
    """The placement, once made; a test that would wait forever fails after a deadline."""
    await asyncio.wait_for(placing, timeout=30)


async def idle(done: Callable[[], bool] = lambda: False) -> None:
    """Let every ready coroutine run until nothing is left to do (or ``done()``): no clock is
    involved, the loop runs ready callbacks only."""
    for _ in range(100):
        if done():
            return
        await asyncio.sleep(0)


def test_new_work_goes_to_the_least_loaded_active_agent_and_reserves_its_slot() -> None:
    w = worker()

    async def run() -> None:
        w.live.beat(["b", "a"], T0)
        w.live.beat(["s"], T0, pool=Pool.STANDBY)
        await w.atick(T0)
        await w.place(task("t-1").encode(), partition=1, offset=5)
        await w.place(task("t-2").encode(), partition=1, offset=6)

    asyncio.run(run())
    sent = w.outbox.sent
    assert [(s.topic, s.partition, s.key) for s in sent if s.topic == TOPICS.assigned] == [
        (TOPICS.assigned, 1, b"t-1"),
        (TOPICS.assigned, 1, b"t-2"),
    ]
    got = decisions(w)
    assert [(d.task_id, d.target_agent_id, d.target_epoch) for d in got] == [
        ("t-1", "a", 1),  # a and b idle: tie broken by agent id; never the standby
        ("t-2", "b", 1),  # a has t-1 reserved now
    ]
    assert {(d.attempt, d.reason, d.checkpoint, d.from_agent_id) for d in got} == {
        (1, DispatchReason.NEW, None, None)
    }
    assert [d.source for d in got] == [SourceRef(1, 5), SourceRef(1, 6)]
    assert w.monitor.reservations.counts() == {("a", 1): 1, ("b", 1): 1}
    assert w.monitor.intake.next_offset(1) == 7


def test_a_task_submitted_while_no_agent_runs_waits_for_one() -> None:
    w = worker()

    async def run() -> None:
        await w.atick(T0)
        placing = asyncio.ensure_future(w.place(task().encode()))
        await idle()
        assert not placing.done() and decisions(w) == []
        await w.atick(T0 + 0.1)  # nothing changed: still waiting
        w.live.beat(["a"], T0 + 0.3)
        await w.atick(T0 + 0.3)  # the tick hears of a new agent: a target at once
        await placed(placing)

    asyncio.run(run())
    assert [d.target_agent_id for d in decisions(w)] == ["a"]


def test_a_completion_frees_the_slot_at_once_without_a_tick_or_heartbeat() -> None:
    full = dataclasses.replace(record("a", slots=(slot("t-0"),)), capacity=1)
    w = worker({"a": full})

    async def run() -> None:
        w.live.beat(["a"], T0, capacity=1)
        await w.atick(T0)
        placing = asyncio.ensure_future(w.place(task("t-1").encode()))
        await idle()
        assert not placing.done()
        await w.adeliver(
            TOPICS.task_events,
            "a",
            event(EventKind.COMPLETED, agent="a", task_id="t-0").encode(),
            T0,
        )
        await idle(placing.done)
        assert placing.done()

    asyncio.run(run())
    assert [(d.task_id, d.target_agent_id) for d in decisions(w)] == [("t-1", "a")]


def test_nothing_is_placed_before_the_worker_has_heard_its_agents() -> None:
    # Just after taking over agent partitions, only the first agents to beat are known: work
    # placed then would pile on them. Placement waits until every agent the table knows as
    # running has beaten, or for as long as detection gives an agent not heard since the
    # takeover (the grace period plus the timeout: 1 s here; c never beats again).
    known = {a: record(a) for a in ("a", "b", "c")}
    w = Worker(known, topics=TOPICS, timeout=1.0)
    w.feed.partitions = frozenset({0, 1})

    async def run() -> None:
        w.live.beat(["b"], T0)
        await w.atick(T0)
        placing = asyncio.ensure_future(w.place(task().encode()))
        for now in (T0 + 0.3, T0 + 0.6, T0 + 0.9):
            w.live.beat(["a", "b"], now)  # a is heard from now on, c is not
            await w.atick(now)
            await idle()
            assert not placing.done()
        w.live.beat(["a", "b"], T0 + 1.2)
        await w.atick(T0 + 1.2)
        await placed(placing)

    asyncio.run(run())
    assert [d.target_agent_id for d in decisions(w)] == ["a"]  # not b, the first one heard


def test_placement_starts_once_every_known_agent_has_beaten() -> None:
    known = {a: record(a) for a in ("a", "b")}
    w = Worker(known, topics=TOPICS, timeout=5.0, grace=5.0)
    w.feed.partitions = frozenset({0, 1})

    async def run() -> None:
        w.live.beat(["b"], T0)
        await w.atick(T0)
        placing = asyncio.ensure_future(w.place(task().encode()))
        await idle()
        assert not placing.done()
        w.live.beat(["a", "b"], T0 + 0.3)
        await w.atick(T0 + 0.3)
        await placed(placing)

    asyncio.run(run())
    assert [d.target_agent_id for d in decisions(w)] == ["a"]


def test_standbys_never_get_new_work() -> None:
    w = worker()

    async def run() -> None:
        w.live.beat(["s"], T0, pool=Pool.STANDBY)
        await w.atick(T0)
        placing = asyncio.ensure_future(w.place(task().encode()))
        await idle()
        await w.atick(T0 + 0.3)
        await idle()
        assert not placing.done() and decisions(w) == []
        w.live.beat(["b"], T0 + 0.6)
        await w.atick(T0 + 0.6)
        await w.atick(T0 + 0.9)
        await placed(placing)

    asyncio.run(run())
    assert [d.target_agent_id for d in decisions(w)] == ["b"]


def test_failover_work_is_placed_before_new_work() -> None:
    # A dead agent's task waits for a target (nobody has a free slot), and so does new work.
    dead = dataclasses.replace(
        record("x", slots=(slot("moved", status=SlotStatus.QUEUED),)),
        fenced=(FencedEpoch(1, "d", 0.0),),
    )
    w = worker({"x": dead})

    async def run() -> None:
        await w.atick(T0)
        assert w.monitor.writer.moves_waiting() == 1
        placing = asyncio.ensure_future(w.place(task("new").encode()))
        await idle()
        # One slot appears: the move takes it, the new task keeps waiting.
        w.live.beat(["a"], T0 + 0.3, capacity=1)
        await w.atick(T0 + 0.3)
        await idle()
        assert not placing.done()
        (ctl,) = w.controls()
        assert (ctl.kind, ctl.plan[0].task_id, ctl.plan[0].target_agent_id) == (
            ControlKind.DISPATCH,
            "moved",
            "a",
        )
        w.live.beat(["b"], T0 + 0.6, capacity=1)
        await w.atick(T0 + 0.6)
        await w.atick(T0 + 0.9)
        await placed(placing)

    asyncio.run(run())
    assert [(d.task_id, d.target_agent_id) for d in decisions(w)] == [("new", "b")]


def test_a_record_whose_partition_is_taken_away_is_left_for_the_next_owner() -> None:
    w = worker()

    async def run() -> None:
        await w.atick(T0)
        placing = asyncio.ensure_future(w.place(task().encode(), partition=0, offset=3))
        await idle()
        w.feed.rebalancing = True
        await w.atick(T0 + 0.1, busy=True)
        await placed(placing)
        assert decisions(w) == []
        assert w.monitor.intake.next_offset(0) == 0  # read again from here by its next owner
        # The partition comes back here; should reading go on past the record left behind, it
        # goes back to it rather than leave it undecided.
        w.feed.rebalancing = False
        w.live.beat(["a"], T0 + 0.3)
        await w.atick(T0 + 0.3)
        await w.place(task("later").encode(), partition=0, offset=4)
        assert w.feed.skipped_to == [(0, 3)] and decisions(w) == []
        await w.place(task().encode(), partition=0, offset=3)
        await w.place(task("later").encode(), partition=0, offset=4)

    asyncio.run(run())
    assert [(d.task_id, d.source) for d in decisions(w)] == [
        ("t-1", SourceRef(0, 3)),
        ("later", SourceRef(0, 4)),
    ]


def test_a_bad_task_record_is_dead_lettered_and_the_next_one_placed() -> None:
    w = worker()

    async def run() -> None:
        w.live.beat(["a"], T0)
        await w.atick(T0)
        await w.place(b"{not a task", offset=0)
        await w.place(task("t-1").encode(), offset=1)

    asyncio.run(run())
    (letter,) = [DeadLetter.decode(s.value) for s in w.outbox.take(TOPICS.dead_letter)]
    assert (letter.topic, letter.partition, letter.offset) == (TOPICS.tasks, 0, 0)
    assert "not JSON" in letter.reason
    assert [(d.task_id, d.source) for d in decisions(w)] == [("t-1", SourceRef(0, 1))]
    labels = {"topic": "tasks", "reason": "not_json", "source": "monitor"}
    assert w.gauge("agent_failover_dead_letters_total", labels) == 1


def test_records_already_forwarded_are_skipped_and_reading_jumps_past_them() -> None:
    w = worker()
    w.progress[0] = 5

    async def run() -> None:
        w.live.beat(["a"], T0)
        await w.atick(T0)
        await w.place(task("old-0").encode(), offset=0)  # a new assignment reads from the start
        await w.place(task("old-1").encode(), offset=1)  # fetched before the jump
        await w.place(task("t-5").encode(), offset=5)

    asyncio.run(run())
    assert w.feed.skipped_to == [(0, 5)]
    assert [d.task_id for d in decisions(w)] == ["t-5"]


def test_the_first_decision_per_record_is_forwarded_once_later_ones_are_skipped() -> None:
    w = worker()
    first = new_work("t-1", target="a", offset=4, decision_id="d-1")
    second = new_work("t-1", target="b", offset=4, decision_id="d-2")
    w.monitor.reservations.reserve(("b", 1), "t-1", T0, local=True)

    async def run() -> None:
        await w.assign(first.encode(), offset=10)
        await w.assign(second.encode(), offset=11)

    asyncio.run(run())
    (forwarded,) = w.outbox.take(TOPICS.priority)
    assert (forwarded.key, forwarded.partition, forwarded.value) == (b"a", 0, first.encode())
    assert w.progress == {0: 5}
    assert w.gauge("agent_failover_decisions_duplicate_total") == 1
    assert w.gauge("agent_failover_tasks_dispatched_total") == 1
    assert w.monitor.reservations.counts() == {}  # the slot the losing decision held is free


def test_a_crash_before_the_progress_write_forwards_the_same_bytes_again() -> None:
    w = worker()
    decision = new_work("t-1", target="a", offset=4)
    asyncio.run(w.assign(decision.encode()))
    w.progress.clear()  # as if the table write had not happened
    asyncio.run(w.assign(decision.encode()))
    sent = w.outbox.take(TOPICS.priority)
    assert [s.value for s in sent] == [decision.encode(), decision.encode()]


@pytest.mark.parametrize(
    ("value", "partition", "reason", "refusal"),
    [
        (
            new_work(partition=1).encode(),
            0,
            "decision about tasks[1] in partition 0",
            "wrong_partition",
        ),
        (
            dataclasses.replace(
                new_work(),
                attempt=2,
                reason=DispatchReason.RELEASED,
                from_agent_id="x",
                from_epoch=1,
                source=None,
            ).encode(),
            0,
            "not an intake decision",
            "invalid",
        ),
        (b"{", 0, "not JSON", "not_json"),
    ],
)
def test_what_is_no_intake_decision_is_dead_lettered(
    value: bytes, partition: int, reason: str, refusal: str
) -> None:
    w = worker()
    asyncio.run(w.assign(value, partition=partition))
    (letter,) = [DeadLetter.decode(s.value) for s in w.outbox.take(TOPICS.dead_letter)]
    assert reason in letter.reason and letter.topic == TOPICS.assigned
    assert w.outbox.take(TOPICS.priority) == [] and w.progress == {}
    labels = {"topic": "tasks.assigned", "reason": refusal, "source": "monitor"}
    assert w.gauge("agent_failover_dead_letters_total", labels) == 1
    assert w.gauge("agent_failover_tasks_dispatched_total") == 0


def test_the_forwarded_dispatch_gives_the_target_the_task_and_settles_its_reservation() -> None:
    w = worker()

    async def run() -> None:
        w.live.beat(["a"], T0)
        await w.atick(T0)
        await w.place(task("t-1").encode())
        (decided,) = w.outbox.take(TOPICS.assigned)
        await w.assign(decided.value)
        (forwarded,) = w.outbox.take(TOPICS.priority)
        assert w.monitor.reservations.counts() == {("a", 1): 1}
        await w.adeliver(TOPICS.priority, "a", forwarded.value, T0)

    asyncio.run(run())
    held = w.table["a"].tasks["t-1"]
    assert (held.attempt, held.epoch, held.status) == (1, 1, SlotStatus.OWNED)
    assert w.monitor.reservations.counts() == {}


def test_work_waiting_while_slots_are_free_is_reported_once_a_minute(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = worker()
    # Partition 0: the record at offset 0 waits, two more behind it. Partition 1: two records
    # that never arrive (as if the consumer were stuck).
    w.feed.high = {0: 3, 1: 2}
    stuck = logging.getLogger("agent_failover.streams.intake")

    async def run() -> None:
        w.live.beat(["a"], T0)
        await w.atick(T0)
        # Something holds new work back although a slot is free (here: a move said to wait).
        monkeypatch.setattr(w.monitor.writer, "moves_waiting", lambda: 1)
        placing = asyncio.ensure_future(w.place(task().encode()))
        await idle()
        status = w.monitor.intake.status(T0 + 0.5)
        assert (status.backlog, status.free_slots, status.stuck) == ({0: 3, 1: 2}, 2, 0)
        assert status.oldest_wait_s == 0.5
        with caplog.at_level(logging.WARNING, logger=stuck.name):
            for now in (T0 + 31, T0 + 35, T0 + 60, T0 + 92):
                w.live.beat(["a"], now)
                w.monitor.intake.tick(now)  # what each detection tick does
        assert w.monitor.intake.status(T0 + 92).stuck == 5
        # What the metrics show: the backlog of the owned partitions and the stuck new work.
        assert w.gauge("agent_failover_tasks_backlog") == 5
        assert w.gauge("agent_failover_tasks_stuck") == 5
        placing.cancel()

    asyncio.run(run())
    warnings = [r for r in caplog.records if r.name == stuck.name]
    assert len(warnings) == 2  # at +31 and +92 s
    assert "2 free slot(s): 5 new task(s)" in warnings[0].getMessage()


def test_the_backlog_counts_records_until_their_decision_is_forwarded() -> None:
    w = worker()
    w.feed.high = {0: 2}

    async def run() -> None:
        w.live.beat(["a", "b"], T0)
        await w.atick(T0)
        await w.place(task("t-1").encode(), offset=0)
        await w.place(task("t-2").encode(), offset=1)
        await w.atick(T0 + 1.0)  # both decided, neither forwarded
        assert w.gauge("agent_failover_tasks_backlog") == 2
        for decided in w.outbox.take(TOPICS.assigned):
            await w.assign(decided.value)
        await w.atick(T0 + 2.0)

    asyncio.run(run())
    assert w.gauge("agent_failover_tasks_backlog") == 0
    assert w.gauge("agent_failover_tasks_stuck") == 0
    assert w.gauge("agent_failover_tasks_dispatched_total") == 2


def test_a_worker_without_agent_partitions_still_places_on_other_workers_agents() -> None:
    # faust may give a worker task partitions and no agent partition: it places new work on the
    # agents other workers list, and its tick still wakes the waiting record.
    directory = FleetDirectory("w1", TOPICS.agent_partitions)
    w = Worker({}, topics=TOPICS, directory=directory)
    w.feed.partitions = frozenset({0, 1})

    async def run() -> None:
        await w.atick(T0, owned=())
        placing = asyncio.ensure_future(w.place(task("t-1").encode()))
        await idle()
        assert not placing.done()
        agent = FleetAgent("remote", 7, 2, 0, Pool.ACTIVE)
        directory.receive(FleetSummary("w2", T0, (0,), (agent,)), T0 + 0.5)
        await w.atick(T0 + 0.6, owned=())
        await placed(placing)

    asyncio.run(run())
    assert [(d.target_agent_id, d.target_epoch) for d in decisions(w)] == [("remote", 7)]
