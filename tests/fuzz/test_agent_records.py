"""Property: an agent's listener and checkpoint reader use every good record and set aside every
bad one addressed to them, whatever comes before or after; the monitor counts those dead letters
once.

The listener reads control and tasks.priority records, valid or hostile (:mod:`tests.fuzz.
hostile`), some signed by a stranger; its handlers raise for some valid records (a bug a record
triggers); the producer refuses some dead letters. It must hand on exactly the valid records a
listener reading only those hands on, set aside every bad record keyed by its own agent id and
every record whose handling raised, and skip bad records keyed by other agents.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
from collections.abc import Iterator
from unittest import mock

from confluent_kafka import Message, TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from agent_failover import models as m
from agent_failover.errors import BrokerError, CodecError, Refusal
from agent_failover.sdk.checkpoint import CheckpointReader
from agent_failover.sdk.deadletters import AgentDeadLetters
from agent_failover.sdk.intake import Listener
from agent_failover.sdk.kafka import Delivered, DeliveryFuture
from agent_failover.sdk.lease import Lease
from agent_failover.streams.deadletters import AgentLetters
from agent_failover.streams.metrics import MonitorMetrics
from tests.fuzz.hostile import (
    AGENTS,
    FLEET,
    TOPICS,
    Raw,
    agent_id_of,
    agent_letters,
    agent_partition,
    checkpoints,
    controls,
    fates,
    forged_at,
    forgeries,
    fuzz_settings,
    hostile,
    redispatches,
    signer,
    stream,
    valid_raw,
)
from tests.inmemory import MemoryConsumer, consumed
from tests.streams.harness import Msg

ME = AGENTS[0]
known = st.sampled_from(AGENTS)


def records_on(topic: str, valid: st.SearchStrategy[m.Record]) -> list[st.SearchStrategy]:  # type: ignore[type-arg]
    part = agent_partition(TOPICS)
    return [
        st.tuples(st.just(topic), valid_raw(valid, agent_id_of, TOPICS)),
        st.tuples(st.just(topic), hostile(valid, agent_id_of, part, TOPICS.agent_partitions)),
    ]


LISTENED = stream(
    *records_on(TOPICS.control, controls(known)),
    *records_on(TOPICS.priority, redispatches(known)),
    max_size=16,
)


class Sink:
    """An agent producer's ``send`` for dead letters: takes a record, refuses it at once, or
    lets the broker refuse it, as ``fates`` say (0, 1, 2; taken once they run out)."""

    def __init__(self, fates: list[int]) -> None:
        self.written: list[m.DeadLetter] = []
        self._fates: Iterator[int] = iter(fates)

    def send(self, topic: str, key: bytes, value: bytes) -> DeliveryFuture:
        future: DeliveryFuture = concurrent.futures.Future()
        fate = next(self._fates, 0)
        if fate == 1:
            raise BrokerError(f"write to {topic} refused: local queue full")
        if fate == 2:
            future.set_exception(BrokerError(f"write to {topic} failed: too large"))
            return future
        assert topic == TOPICS.dead_letter and len(key) <= 1024 and len(value) < 1_000_000
        self.written.append(m.DeadLetter.decode(value))
        future.set_result(Delivered(topic, 0, len(self.written)))
        return future


def buggy(record: m.Record) -> bool:
    """The records the test's handlers fail on, as a bug would."""
    if isinstance(record, m.Control):
        return record.decision_id == "d2" and record.kind is m.ControlKind.DRAIN
    return isinstance(record, m.Redispatch) and record.attempt == 3


@dataclasses.dataclass
class Heard:
    handed: list[m.Record]
    sink: Sink
    failed: list[BaseException]


def listen(batch: list[Message], fates: list[int]) -> Heard:
    handed: list[m.Record] = []
    failed: list[BaseException] = []
    sink = Sink(fates)

    def handle(record: m.Record) -> None:
        if buggy(record):
            raise RuntimeError("a bug this record triggers")
        handed.append(record)

    listener = Listener(
        mock.Mock(),
        control=TopicPartition(TOPICS.control, 0, 0),
        priority_topic=TOPICS.priority,
        lease=Lease(3.0),  # never lapses here: no read to the end is asked for
        on_control=handle,
        on_redispatch=handle,
        on_failure=failed.append,
        signer=FLEET,
        dead_letters=AgentDeadLetters(sink.send, TOPICS.dead_letter, ME),
        agent_id=ME,
        name="af-a0",
    )
    listener._consumer = MemoryConsumer([batch], on_empty=listener._stop.set)  # type: ignore[assignment]
    listener._loop()
    return Heard(handed, sink, failed)


def decoded(topic: str, raw: Raw, forged: bool) -> m.Record | None:
    """The record the reference judges valid (signed by the fleet, decodes), else None."""
    if forged:
        return None
    cls = m.Control if topic == TOPICS.control else m.Redispatch
    try:
        return cls.decode(raw.value)
    except CodecError:
        return None


@fuzz_settings(default=150)
@given(LISTENED, forgeries, fates)
def test_the_listener_uses_the_good_records_and_sets_aside_the_bad_ones_addressed_to_it(
    drawn: list[tuple[str, Raw]], forged: list[bool], verdicts: list[int]
) -> None:
    batch, good, expected = [], [], set()
    for offset, (topic, raw) in enumerate(drawn):
        lie = forged_at(forged, offset)
        batch.append(consumed(topic, raw.partition, offset, raw.key, raw.value, signer(lie)))
        msg = batch[-1]
        record = decoded(topic, raw, lie)
        if record is not None:
            good.append(msg)
            if buggy(record):
                expected.add((offset, Refusal.INTERNAL))
        elif raw.key == ME.encode():
            expected.add((offset, None))
    everything = listen(batch, verdicts)
    reference = listen(good, [])
    assert everything.failed == [] and reference.failed == []
    assert everything.handed == reference.handed
    written = {letter.offset: letter for letter in everything.sink.written}
    for letter in written.values():
        assert letter.source is m.Source.AGENT and letter.agent_id == ME and letter.reason
        assert (letter.offset, letter.refusal) in expected or (letter.offset, None) in expected
    # Every one expected was written, or refused by the producer (fates 1 and 2): never more.
    refused = sum(1 for f in verdicts[: len(expected)] if f)
    assert len(written) == len(expected) - refused


CHECKPOINTS = stream(
    checkpoints().map(lambda c: (c, Raw(c.task_id.encode(), c.encode(), 0, "valid"))),
    checkpoints().flatmap(
        lambda c: hostile(st.just(c), lambda r: r.task_id, lambda _: 0, 1).map(lambda r: (c, r))
    ),
    max_size=8,
)


@fuzz_settings(default=100)
@given(CHECKPOINTS)
def test_the_checkpoint_reader_resumes_only_from_the_named_checkpoint_and_never_raises(
    drawn: list[tuple[m.Checkpoint, Raw]],
) -> None:
    sink = Sink([])
    reader = CheckpointReader(
        {}, TOPICS.checkpoints, FLEET, 1.0, AgentDeadLetters(sink.send, TOPICS.dead_letter, ME)
    )
    expected_letters = 0
    for offset, (named, raw) in enumerate(drawn):
        ref = m.CheckpointRef(0, offset, named.step, named.task_id, named.attempt, named.epoch)
        msg = consumed(TOPICS.checkpoints, 0, offset, raw.key, raw.value, FLEET)
        try:
            found: m.Checkpoint | None = m.Checkpoint.decode(raw.value)
        except CodecError:
            found, expected_letters = None, expected_letters + 1
        checkpoint, why = reader._use(ref, msg)
        if found is not None and ref.names(found):
            assert (checkpoint, why) == (found, "")
        else:
            assert checkpoint is None and why
    assert len(sink.written) == expected_letters


LETTERS = stream(
    agent_letters().map(lambda d: Raw(b"k", d.encode(), 0, "valid")),
    hostile(agent_letters(), lambda d: d.key or "k", lambda _: 0, 1),
    max_size=10,
)


@fuzz_settings(default=100)
@given(LETTERS, forgeries)
def test_the_monitor_counts_each_agent_dead_letter_once_and_nothing_else(
    drawn: list[Raw], forged: list[bool]
) -> None:
    metrics = MonitorMetrics()
    letters = AgentLetters(TOPICS, metrics, FLEET)
    expected: dict[tuple[str, str], int] = {}
    for offset, raw in enumerate(drawn):
        lie = forged_at(forged, offset)
        headers = signer(lie).headers(TOPICS.dead_letter, raw.key, raw.value)
        letters.on_message(Msg(TOPICS.dead_letter, 0, offset, raw.key, raw.value, headers))
        try:
            letter = m.DeadLetter.decode(raw.value)
        except CodecError:
            continue
        logical = letter.topic.removeprefix(TOPICS.prefix)
        if lie or letter.source is not m.Source.AGENT or logical == letter.topic:
            continue
        if logical not in ("control", "tasks.priority", "checkpoints"):
            continue
        label = (logical, (letter.refusal or Refusal.INVALID).value)
        expected[label] = expected.get(label, 0) + 1
    for (topic, reason), count in expected.items():
        value = metrics.registry.get_sample_value(
            "agent_failover_dead_letters_total",
            {"topic": topic, "reason": reason, "source": "agent"},
        )
        assert value == count
    total = sum(
        s.value
        for metric in metrics.registry.collect()
        if metric.name == "agent_failover_dead_letters"
        for s in metric.samples
        if s.name.endswith("_total")
    )
    assert total == sum(expected.values())
