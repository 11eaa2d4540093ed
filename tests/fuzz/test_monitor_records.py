"""Property: no record stops the monitor's faust agents, every bad one is set aside and counted,
and the good ones around it are applied as if it had never been there.

Each example is a stream of records on task-events, control and tasks.priority (the router),
then on tasks (the intake) and tasks.assigned (the assigner), valid or hostile
(:mod:`tests.fuzz.hostile`), some signed by someone else. The same stream without the records
the model's decoder refuses (or signed by a stranger, or in the wrong partition) is the reference:
the worker that read everything must end with the same table and write the same records, plus
one dead letter per refused record.
"""

from __future__ import annotations

import asyncio
import dataclasses
from unittest import mock

from hypothesis import event, given
from hypothesis import strategies as st

from agent_failover import models as m
from agent_failover.errors import CodecError
from agent_failover.partitioner import partition_for
from agent_failover.streams.state import AgentRecord
from tests.fuzz.hostile import (
    AGENTS,
    FLEET,
    KAFKA,
    TOPICS,
    Raw,
    agent_id_of,
    agent_partition,
    controls,
    fuzz_settings,
    hostile,
    redispatches,
    signer,
    stream,
    task_events,
    tasks,
    valid_raw,
)
from tests.streams.harness import T0, Msg, Worker

WALL = 1_900_000_000.0  # every wall-clock reading of a run: the two runs must be comparable

RECORDS: dict[str, type[m.Record]] = {
    TOPICS.task_events: m.TaskEvent,
    TOPICS.control: m.Control,
    TOPICS.priority: m.Redispatch,
}
known = st.sampled_from(AGENTS)


def on(topic: str, raws: st.SearchStrategy[Raw]) -> st.SearchStrategy[tuple[str, Raw, bool]]:
    """Records of ``topic``; about one in twelve signed by a stranger."""
    return st.tuples(st.just(topic), raws, st.integers(0, 11).map(lambda n: n == 0))


def agent_topic(
    topic: str, valid: st.SearchStrategy[m.Record]
) -> list[st.SearchStrategy[tuple[str, Raw, bool]]]:
    part = agent_partition(TOPICS)
    return [
        on(topic, valid_raw(valid, agent_id_of, TOPICS)),
        on(topic, hostile(valid, agent_id_of, part, TOPICS.agent_partitions)),
    ]


ROUTED = stream(
    *agent_topic(TOPICS.task_events, task_events(known)),
    *agent_topic(TOPICS.control, controls(known)),
    *agent_topic(TOPICS.priority, redispatches(known, new=False)),
    max_size=16,
)


def worker() -> Worker:
    w = Worker({}, topics=TOPICS, kafka=KAFKA)
    w.monitor.ownership.set(set(range(TOPICS.agent_partitions)), T0)
    w.live.beat(AGENTS, T0, epoch=1, capacity=4)  # targets for whatever must move
    return w


def judged_valid(topic: str, raw: Raw, forged: bool, cls: type[m.Record]) -> bool:
    """The reference's judgement: signed by the fleet, decodes, and (on agent-keyed topics) in
    its agent's partition. The code under test is not asked."""
    if forged:
        return False
    try:
        record = cls.decode(raw.value)
    except CodecError:
        return False
    if topic in RECORDS:
        return partition_for(agent_id_of(record), TOPICS.agent_partitions) == raw.partition
    return True


def message(topic: str, offset: int, raw: Raw, forged: bool) -> Msg:
    headers = signer(forged).headers(topic, raw.key, raw.value)
    return Msg(topic, raw.partition, offset, raw.key, raw.value, headers)


@dataclasses.dataclass
class Run:
    """What a worker did with a stream: its table, the records it wrote (dead letters apart,
    without their random ids and times), its dead letters by offset, and what it counted."""

    table: dict[str, AgentRecord]
    written: list[tuple[str, bytes, int]]
    letters: dict[int, m.DeadLetter]
    counted: float


def counted(w: Worker) -> float:
    total = 0.0
    for metric in w.metrics.registry.collect():
        if metric.name == "agent_failover_dead_letters":
            total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return total


def route(records: list[tuple[int, str, Raw, bool]]) -> Run:
    w = worker()

    async def feed() -> None:
        for offset, topic, raw, forged in records:
            await w.monitor.on_message(message(topic, offset, raw, forged), T0 + offset / 100)

    with mock.patch("time.time", return_value=WALL):
        asyncio.run(feed())
    letters = {}
    for sent in w.outbox.take(TOPICS.dead_letter):
        letter = m.DeadLetter.decode(sent.value)
        assert letter.offset not in letters, "one dead letter per record"
        letters[letter.offset] = letter
    written = [(s.topic, s.key, s.partition) for s in w.outbox.sent]
    return Run(dict(w.table), written, letters, counted(w))


@fuzz_settings(default=150)
@given(ROUTED)
def test_the_router_sets_bad_records_aside_and_applies_the_rest_unchanged(
    drawn: list[tuple[str, Raw, bool]],
) -> None:
    records = [(offset, topic, raw, forged) for offset, (topic, raw, forged) in enumerate(drawn)]
    bad = {o for o, t, r, f in records if not judged_valid(t, r, f, RECORDS[t])}
    event(f"{len(bad)} refused of {len(records)}")
    everything = route(records)
    reference = route([r for r in records if r[0] not in bad])
    assert everything.table == reference.table
    assert everything.written == reference.written
    # Every refused record is set aside, with its place and a reason; nothing else is, but
    # what the reference sets aside too (a valid record whose handling failed).
    assert set(everything.letters) == bad | set(reference.letters)
    for offset in bad:
        letter = everything.letters[offset]
        _, topic, raw, _ = records[offset]
        assert (letter.topic, letter.partition) == (topic, raw.partition)
        assert letter.reason and letter.refusal is not None and letter.source is m.Source.MONITOR
        assert letter.key_size == (len(raw.key) if raw.key is not None else None)
    assert everything.counted == len(everything.letters)


TASKS = stream(
    st.tuples(
        tasks().map(lambda t: Raw(t.task_id.encode(), t.encode(), 0, "valid")), st.just(False)
    ),
    st.tuples(
        hostile(tasks(), lambda t: t.task_id, lambda _key: 0, 1),
        st.integers(0, 11).map(lambda n: n == 0),
    ),
    max_size=10,
)


@fuzz_settings(default=60)
@given(TASKS)
def test_the_intake_places_every_good_task_and_sets_every_bad_one_aside(
    drawn: list[tuple[Raw, bool]],
) -> None:
    """The intake and the assigner over the same records: one decision and one forward per good
    task, in order; a dead letter per bad one; the partition never stops."""
    w = worker()
    w.feed.partitions = frozenset({0})
    bad = set()
    for offset, (raw, forged) in enumerate(drawn):
        if not judged_valid(TOPICS.tasks, raw, forged, m.Task):
            bad.add(offset)

    async def run() -> None:
        await w.atick(T0, owned=range(TOPICS.agent_partitions))
        for offset, (raw, forged) in enumerate(drawn):
            msg = message(TOPICS.tasks, offset, dataclasses.replace(raw, partition=0), forged)
            await asyncio.wait_for(w.monitor.on_task(msg, lambda: True), timeout=30)
        for offset, sent in enumerate(w.outbox.take(TOPICS.assigned)):
            decision = Msg(sent.topic, sent.partition, offset, sent.key, sent.value, None)
            signed = FLEET.headers(sent.topic, sent.key, sent.value)
            await w.monitor.on_decision(dataclasses.replace(decision, headers=signed))

    with mock.patch("time.time", return_value=WALL):
        asyncio.run(run())
    letters = {m.DeadLetter.decode(s.value).offset for s in w.outbox.take(TOPICS.dead_letter)}
    forwarded = [m.Redispatch.decode(s.value) for s in w.outbox.take(TOPICS.priority)]
    placed = [o for o in range(len(drawn)) if o not in letters]
    assert bad <= letters
    assert [rd.source.offset for rd in forwarded if rd.source is not None] == placed
    for rd in forwarded:
        good = drawn[rd.source.offset if rd.source else -1][0]
        assert m.Task.decode(good.value) == rd.task
    # Every refused record counted once: the too-large ones among the good ones too.
    assert counted(w) == len(letters)
