"""The monitor's intake on a real broker: new work placed on active agents only, the first
decision per task record forwarded once, however many decisions were written, and in a signing
fleet only what the fleet signed placed, each hop signed for its own topic and key."""

from __future__ import annotations

import time
import uuid

import pytest

from agent_failover import models as m
from agent_failover.dev.reading import Rec, TopicReader
from agent_failover.errors import CodecError
from agent_failover.signing import Signer
from tests.streams import factories
from tests.streams.conftest import Fleet, MonitorHarness
from tests.streams.test_metrics_broker import bad_signatures, sample, scrape

pytestmark = [pytest.mark.broker, pytest.mark.slow]

TIMEOUT = 60.0  # generous deadlines: a loaded 2-core box is slow, never wrong
ENV = {"AGENT_FAILOVER_HEARTBEAT_TIMEOUT": "2", "AGENT_FAILOVER_TICK_INTERVAL": "0.05"}
KEY = "the-fleet-signing-key-0123456789"
FLEET = Signer(KEY.encode())
ROGUE = Signer(b"a-key-of-someone-else-0123456789")


def produce(
    h: MonitorHarness,
    topic: str,
    key: str,
    value: bytes,
    partition: int,
    signer: Signer | None = None,
) -> int:
    """Write one record to ``topic[partition]``, signed by ``signer`` (default: the harness's);
    returns its offset."""
    where: list[int] = []
    h.producer.produce(
        topic,
        value,
        key.encode(),
        partition=partition,
        headers=(signer or h.signer).headers(topic, key, value),
        on_delivery=lambda err, msg: where.append(msg.offset()),
    )
    assert h.producer.flush(30) == 0
    return where[0]


def submit(
    h: MonitorHarness, task_id: str, partition: int = 0, signer: Signer | None = None
) -> tuple[m.Task, int]:
    task = m.Task(task_id=task_id, task_type="demo", payload={"steps": 1})
    return task, produce(h, h.topics.tasks, task_id, task.encode(), partition, signer)


def new_work(h: MonitorHarness, *, to_end: bool = False) -> list[m.Redispatch]:
    return [
        r
        for r in h.records(h.topics.priority, m.Redispatch.decode, to_end=to_end)
        if r.reason is m.DispatchReason.NEW
    ]


def test_the_first_decision_per_task_record_is_dispatched_and_no_other(
    monitor_harness: MonitorHarness, fleet: Fleet
) -> None:
    h, t = monitor_harness, monitor_harness.topics
    fleet.start("agent-x", 101, 4, m.Pool.ACTIVE)
    fleet.start("agent-y", 202, 4, m.Pool.ACTIVE)
    task, offset = submit(h, "t-1")

    def by_hand(decision_id: str) -> m.Redispatch:
        """A decision as a worker that died before forwarding it would have left it."""
        return m.Redispatch(
            task=task,
            attempt=1,
            target_agent_id="agent-y",
            target_epoch=202,
            reason=m.DispatchReason.NEW,
            decision_id=decision_id,
            dispatched_at=time.time(),
            source=m.SourceRef(partition=0, offset=offset),
        )

    first = by_hand("decided-before-a-crash")
    produce(h, t.assigned, "t-1", first.encode(), 0)
    h.start_monitor(**ENV)

    def dispatched(task_id: str) -> list[m.Redispatch]:
        return [r for r in new_work(h) if r.task_id == task_id]

    h.eventually(lambda: dispatched("t-1"), TIMEOUT, "t-1 dispatched")
    # Another decision about the same record, written after the first was forwarded; then a
    # task on the same partition: once it is dispatched, every decision before it was handled.
    produce(h, t.assigned, "t-1", by_hand("a-late-duplicate").encode(), 0)
    submit(h, "sentinel")
    h.eventually(lambda: dispatched("sentinel"), TIMEOUT, "the sentinel dispatched")

    everything = [r for r in new_work(h, to_end=True) if r.task_id == "t-1"]
    assert everything == [first]  # the first decision, its bytes unchanged, once
    decisions = h.records(t.assigned, m.Redispatch.decode, to_end=True)
    assert len([d for d in decisions if d.task_id == "t-1"]) >= 2
    assert h.proc is not None and h.proc.alive


def test_standbys_get_no_new_work_and_bad_task_records_are_dead_lettered(
    monitor_harness: MonitorHarness, fleet: Fleet
) -> None:
    h, t = monitor_harness, monitor_harness.topics
    fleet.start("spare", 303, 4, m.Pool.STANDBY)
    produce(h, t.tasks, "bad", b"{not json", 1)
    produce(h, t.tasks, "k" * 900_000, b'{"task_id": "no type", "schema_version": 1}', 1)
    task, _ = submit(h, f"t-{uuid.uuid4().hex[:6]}", partition=1)
    h.start_monitor(**ENV)

    def listed(agent_id: str) -> bool:
        """The monitor's fleet summary lists the agent: it is a target as far as it knows."""
        summaries = h.records(t.fleet, m.FleetSummary.decode)
        return any(a.agent_id == agent_id for s in summaries[-3:] for a in s.agents)

    def bad_records() -> list[m.DeadLetter] | None:
        letters = h.records(t.dead_letter, m.DeadLetter.decode)
        mine = [d for d in letters if d.topic == t.tasks]
        return mine if len(mine) >= 2 else None

    letters = h.eventually(bad_records, TIMEOUT, "the bad task records dead-lettered")
    h.eventually(lambda: listed("spare"), TIMEOUT, "the standby listed")
    # The monitor has read the good task (after the bad ones) and sees the standby: it waits.
    fleet.start("worker", 404, 4, m.Pool.ACTIVE)
    (placed,) = h.eventually(lambda: new_work(h), TIMEOUT, "the task dispatched")
    assert (placed.task_id, placed.target_agent_id, placed.attempt) == (task.task_id, "worker", 1)
    assert {d.offset for d in letters} == {0, 1}
    huge = next(d for d in letters if d.offset == 1)
    assert "task_type" in huge.reason and huge.key_cut and huge.key_size == 900_000
    assert [r.task_id for r in new_work(h, to_end=True)] == [task.task_id]


def test_two_workers_taking_over_task_partitions_place_every_task_once(
    monitor_harness: MonitorHarness, fleet: Fleet
) -> None:
    h, t = monitor_harness, monitor_harness.topics
    for n in range(4):
        fleet.start(f"agent-{n}", 100 + n, 100, m.Pool.ACTIVE)
    h.start_monitor("w1", **ENV)

    def placed() -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in new_work(h):
            counts[r.task_id] = counts.get(r.task_id, 0) + 1
        return counts

    first = [submit(h, f"a-{i}", partition=i % t.task_partitions)[0].task_id for i in range(20)]
    h.eventually(lambda: placed().keys() >= {first[0]}, TIMEOUT, "w1 placing work")
    # A second worker joins while work flows: the task partitions are split between them.
    h.start_monitor("w2", **ENV)
    second = [submit(h, f"b-{i}", partition=i % t.task_partitions)[0].task_id for i in range(20)]

    def owners() -> set[str]:
        return {
            s.monitor_id for s in h.records(t.fleet, m.FleetSummary.decode)[-4:] if s.partitions
        }

    h.eventually(lambda: len(owners()) == 2 or None, TIMEOUT * 2, "both workers owning partitions")
    third = [submit(h, f"c-{i}", partition=i % t.task_partitions)[0].task_id for i in range(20)]
    everything = {*first, *second, *third}
    h.eventually(lambda: placed().keys() >= everything, TIMEOUT * 2, "every task placed")
    # Then a sentinel per partition: once it is placed, every decision before it was handled.
    sentinels = [submit(h, f"last-{p}", partition=p)[0].task_id for p in range(t.task_partitions)]
    h.eventually(lambda: placed().keys() >= set(sentinels), TIMEOUT, "the sentinels placed")
    h.records(t.priority, m.Redispatch.decode, to_end=True)  # everything forwarded so far
    counts = {k: v for k, v in placed().items() if k in everything}
    assert counts == dict.fromkeys(everything, 1)
    assert all(p.alive for p in h.procs.values())


def raw(h: MonitorHarness, topic: str) -> list[Rec]:
    """Every record of ``topic`` so far, with its key and headers."""
    reader = TopicReader(h.bootstrap, topic)
    try:
        return reader.read_to_end()
    finally:
        reader.close()


def test_a_signing_fleet_places_only_signed_work_and_signs_each_hop_for_its_topic_and_key(
    monitor_harness: MonitorHarness, fleet: Fleet
) -> None:
    h, t = monitor_harness, monitor_harness.topics
    h.signer = FLEET  # the fleet's agents and submitters sign
    fleet.start("worker", 101, 4, m.Pool.ACTIVE)
    submit(h, "forged", partition=0, signer=Signer())  # offset 0: nobody of the fleet wrote it
    _, offset = submit(h, "t-1", partition=0)  # offset 1
    # A decision about t-1's record, sending it elsewhere: it would win if it were believed.
    intruder = factories.new_work("t-1", target="intruder", offset=offset, decision_id="forged")
    produce(h, t.assigned, "t-1", intruder.encode(), 0, ROGUE)
    h.start_monitor(AGENT_FAILOVER_SIGNING_KEY=KEY, **ENV)

    (placed,) = h.eventually(lambda: new_work(h), TIMEOUT, "t-1 dispatched")
    assert (placed.task_id, placed.target_agent_id) == ("t-1", "worker")
    forwarded = [r for r in raw(h, t.priority) if r.value is not None]
    decided = [r for r in raw(h, t.assigned) if r.key == b"t-1" and r.offset > 0]
    assert len(forwarded) == 1 and len(decided) == 1
    # The same decision on both topics, each copy signed for its own topic and key.
    assert forwarded[0].value == decided[0].value
    assert forwarded[0].key == b"worker"
    for rec in (*forwarded, *decided):
        FLEET.check(rec.topic, rec.key, rec.value, rec.headers)
    with pytest.raises(CodecError, match="signature does not match"):
        FLEET.check(t.priority, forwarded[0].key, forwarded[0].value, decided[0].headers)

    def refused() -> dict[str, m.DeadLetter] | None:
        letters = h.records(t.dead_letter, m.DeadLetter.decode)
        found = {d.topic: d for d in letters if d.reason.startswith("bad signature")}
        return found if len(found) == 2 else None

    found = h.eventually(refused, TIMEOUT, "the forged task and decision dead-lettered")
    assert (found[t.tasks].offset, found[t.assigned].offset) == (0, 0)
    base = h.http_base()
    assert base is not None

    def counted() -> dict[str, float | None] | None:
        _, samples = scrape(base)
        figures = bad_signatures(samples, "tasks", "tasks.assigned")
        figures["dispatched"] = sample(samples, "agent_failover_tasks_dispatched_total")
        figures["backlog"] = sample(samples, "agent_failover_tasks_backlog")
        return figures if figures["backlog"] == 0 else None

    figures = h.eventually(counted, TIMEOUT, "the backlog published as empty")
    assert figures == {"tasks": 1, "tasks.assigned": 1, "dispatched": 1, "backlog": 0}
