"""Property: the monitor's heartbeat thread handles every record of a batch, whatever it is.

A batch mixes heartbeats and fleet summaries, valid and hostile (:mod:`tests.fuzz.hostile`), and
the producer refuses some dead letters (at once, or in its delivery report). The thread must
keep every valid heartbeat and summary exactly as a batch of only those leaves them, count one
dead letter per refused record, and count the copies the producer refused as lost.
"""

from __future__ import annotations

import dataclasses

from confluent_kafka import KafkaError, Message
from hypothesis import given
from hypothesis import strategies as st

from agent_failover import models as m
from agent_failover.errors import CodecError
from agent_failover.partitioner import partition_for
from agent_failover.streams.fleet import FleetDirectory
from agent_failover.streams.liveness import LivenessTracker
from tests.fuzz.hostile import (
    AGENTS,
    KAFKA,
    TOPICS,
    Raw,
    agent_id_of,
    agent_partition,
    fates,
    forged_at,
    forgeries,
    fuzz_settings,
    heartbeats,
    hostile,
    signer,
    stream,
    summaries,
    valid_raw,
)
from tests.inmemory import MemoryProducer, Produced, consumed

NOW = 50.0

beats = heartbeats(st.sampled_from(AGENTS))
BATCH = stream(
    st.tuples(st.just(TOPICS.heartbeats), valid_raw(beats, agent_id_of, TOPICS)),
    st.tuples(
        st.just(TOPICS.heartbeats),
        hostile(beats, agent_id_of, agent_partition(TOPICS), TOPICS.agent_partitions),
    ),
    st.tuples(
        st.just(TOPICS.fleet),
        summaries().map(lambda s: Raw(s.monitor_id.encode(), s.encode(), 0, "valid")),
    ),
    st.tuples(st.just(TOPICS.fleet), hostile(summaries(), lambda s: s.monitor_id, lambda _: 0, 1)),
    max_size=20,
)


def valid(topic: str, raw: Raw, forged: bool) -> bool:
    if forged:
        return False
    try:
        if topic == TOPICS.fleet:
            m.FleetSummary.decode(raw.value)
            return True
        beat = m.Heartbeat.decode(raw.value)
    except CodecError:
        return False
    return partition_for(agent_id_of(beat), TOPICS.agent_partitions) == raw.partition


@dataclasses.dataclass
class Outcome:
    entries: dict[str, tuple[int, int, float, int]]
    targets: list[tuple[str, int]]
    letters: list[tuple[str, str]]
    lost: list[str]
    written: list[Produced]


def read(batch: list[Message], verdicts: list[int]) -> Outcome:
    """One ``_handle`` of ``batch``; the producer's n-th dead letter is taken, refused at once or
    refused by the broker as ``verdicts[n]`` says (0, 1, 2; taken once they run out)."""
    letters: list[tuple[str, str]] = []
    lost: list[str] = []
    directory = FleetDirectory("me", TOPICS.agent_partitions)
    tracker = LivenessTracker(
        KAFKA,
        TOPICS,
        directory=directory,
        on_dead_letter=lambda topic, why: letters.append((topic, why)),
        on_dead_letter_lost=lost.append,
    )
    fates = iter(verdicts)

    def verdict(_record: Produced) -> BaseException | KafkaError | None:
        fate = next(fates, 0)
        if fate == 1:
            return BufferError("local queue full")
        return KafkaError(KafkaError.MSG_SIZE_TOO_LARGE) if fate == 2 else None

    producer = MemoryProducer(verdict)
    tracker._handle(batch, NOW, producer)  # type: ignore[arg-type]
    producer.poll(0)
    entries = {a: (e.epoch, e.seq, e.last_seen, e.capacity) for a, e in tracker.snapshot().items()}
    targets = [(c.agent_id, c.epoch) for c in directory.candidates(NOW, owned=())]
    return Outcome(entries, targets, letters, lost, producer.sent)


@fuzz_settings(default=150)
@given(BATCH, forgeries, fates)
def test_every_record_of_a_batch_is_handled_whatever_the_others_are(
    drawn: list[tuple[str, Raw]], forged: list[bool], verdicts: list[int]
) -> None:
    batch, good = [], []
    for offset, (topic, raw) in enumerate(drawn):
        lie = forged_at(forged, offset)
        batch.append(consumed(topic, raw.partition, offset, raw.key, raw.value, signer(lie)))
        if valid(topic, raw, lie):
            good.append(batch[-1])
    everything = read(batch, verdicts)
    reference = read(good, [])
    assert everything.entries == reference.entries
    assert everything.targets == reference.targets
    refused = len(batch) - len(good)
    assert len(everything.letters) == refused  # no drawn summary is keyed "me": all are read
    assert reference.letters == [] and reference.lost == []
    assert len(everything.written) + len(everything.lost) == len(everything.letters)
    for record in everything.written:
        letter = m.DeadLetter.decode(record.value)
        assert letter.reason and letter.refusal is not None
        assert record.topic == TOPICS.dead_letter and len(record.value or b"") < 1_000_000
