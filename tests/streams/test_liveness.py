"""The heartbeat fast path: decoding, validation to dead letters, newest-epoch bookkeeping."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import orjson
import pytest

from agent_failover.config import KafkaConfig, Topics
from agent_failover.errors import CodecError
from agent_failover.models import DeadLetter, Heartbeat, Pool
from agent_failover.models.deadletter import MAX_KAFKA_KEY_BYTES
from agent_failover.partitioner import partition_for
from agent_failover.streams.liveness import LivenessTracker, decode_heartbeat
from tests.inmemory import MemoryProducer

TOPICS = Topics(prefix="x.", agent_partitions=4)


def hb(agent: str = "a", epoch: int = 1, seq: int = 0, **kw: Any) -> bytes:
    return Heartbeat(agent, epoch, seq, 1.5, 1.0, 2, ("t-1",), Pool.STANDBY, **kw).encode()


class FakeMessage:
    def __init__(self, value: bytes | None, partition: int, key: bytes = b"a") -> None:
        self._value, self._partition, self._key = value, partition, key

    def error(self) -> None:
        return None

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes:
        return self._key

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return 5

    def topic(self) -> str:
        return TOPICS.heartbeats


def test_decoding_gives_the_heartbeat_as_a_live_entry() -> None:
    entry = decode_heartbeat(hb(draining=True))
    assert (entry.agent_id, entry.epoch, entry.capacity, entry.in_flight) == ("a", 1, 2, ("t-1",))
    assert entry.pool is Pool.STANDBY and entry.draining
    assert (entry.seq, entry.interval_s, entry.last_seen) == (0, 1.0, 0.0)


def test_what_the_schema_allows_is_accepted() -> None:
    raw = orjson.dumps(
        {
            "schema_version": 1,
            "agent_id": "a",
            "epoch": 1,
            "seq": 0,
            "sent_at": 1,
            "interval_s": 1,
            "capacity": 1,
        }
    )  # integers where floats are expected: valid JSON numbers
    entry = decode_heartbeat(raw)
    assert (entry.capacity, entry.interval_s, entry.pool, entry.in_flight) == (
        1,
        1.0,
        Pool.ACTIVE,
        (),
    )


def changed(**changes: Any) -> bytes:
    return orjson.dumps({**orjson.loads(hb()), **changes})


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"nope", "not JSON"),
        (None, "tombstone"),
        (orjson.dumps({"schema_version": 2}), "schema_version 2"),
        (changed(schema_version=True), "'schema_version' must be an integer, got bool"),
        (changed(epoch="1"), "Expected `int`, got `str` - at `$.epoch`"),
        (changed(epoch=2**63), "Expected `int` <= 9223372036854775807 - at `$.epoch`"),
        (changed(capacity=-1), "Expected `int` >= 0 - at `$.capacity`"),
    ],
)
def test_invalid_heartbeats_raise_with_a_reason(raw: bytes | None, reason: str) -> None:
    with pytest.raises(CodecError) as info:
        decode_heartbeat(raw)
    assert reason in str(info.value)


def tracker() -> tuple[LivenessTracker, MemoryProducer, list[tuple[str, str]]]:
    letters: list[tuple[str, str]] = []
    t = LivenessTracker(
        KafkaConfig("127.0.0.1:9"),
        TOPICS,
        on_dead_letter=lambda topic, why: letters.append((topic, why)),
    )
    return t, MemoryProducer(), letters


def test_newest_epoch_wins_and_bad_records_go_to_dead_letter() -> None:
    t, producer, letters = tracker()
    p = partition_for("a", TOPICS.agent_partitions)
    batch = [
        FakeMessage(hb(epoch=2, seq=4), p),
        FakeMessage(hb(epoch=1, seq=9), p),  # an older incarnation: ignored
        FakeMessage(hb(epoch=2, seq=3), p),  # older seq: ignored
        FakeMessage(b"{", p),
        FakeMessage(hb(), (p + 1) % TOPICS.agent_partitions),  # wrong partitioner
    ]
    t._handle(batch, 42.0, producer)  # type: ignore[arg-type]
    entry = t.snapshot()["a"]
    assert (entry.epoch, entry.seq, entry.last_seen) == (2, 4, 42.0)
    assert letters == [(TOPICS.heartbeats, "not_json"), (TOPICS.heartbeats, "wrong_partition")]
    reasons = [orjson.loads(r.value)["reason"] for r in producer.sent]
    assert "not JSON" in reasons[0] and "murmur2" in reasons[1]
    assert all(r.topic == TOPICS.dead_letter for r in producer.sent)


def test_a_dead_letter_of_a_huge_record_fits_the_record_limit() -> None:
    t, producer, letters = tracker()
    huge = FakeMessage(b"x" * 900_000, 0, key=b"k" * 900_000)
    t._handle([huge], 1.0, producer)  # type: ignore[arg-type]
    ((topic, value, key, _),) = (dataclasses.astuple(r) for r in producer.sent)
    assert topic == TOPICS.dead_letter and letters == [(TOPICS.heartbeats, "not_json")]
    assert key == b"k" * MAX_KAFKA_KEY_BYTES
    assert len(value) + len(key) < 1_000_000  # librdkafka's default message.max.bytes
    letter = DeadLetter.decode(value)
    assert (letter.key_size, letter.value_size, letter.key_cut, letter.value_cut) == (
        900_000,
        900_000,
        True,
        True,
    )


def test_the_map_stays_in_last_seen_order_so_silent_agents_are_a_prefix() -> None:
    t, producer, _ = tracker()
    ids = ["ag-0", "ag-1", "ag-2"]

    def beat(agent: str, seq: int, now: float, epoch: int = 1) -> None:
        msg = FakeMessage(hb(agent, epoch, seq), partition_for(agent, TOPICS.agent_partitions))
        t._handle([msg], now, producer)  # type: ignore[arg-type]

    a, b, c = ids
    beat(a, 0, 1.0)
    beat(b, 0, 2.0)
    beat(c, 0, 3.0)
    assert sorted(t.drain_changed()) == sorted(ids)  # new agents
    assert t.drain_changed() == []
    beat(a, 1, 4.0)  # a beats again: no longer the oldest
    assert [e.agent_id for e in t.expired(2.5)] == [b]
    assert [e.agent_id for e in t.expired(3.0)] == [b, c]
    assert t.drain_changed() == []  # same epoch: nothing changed for detection
    beat(b, 0, 5.0, epoch=2)  # a new epoch
    assert t.drain_changed() == [b]
    assert [e.agent_id for e in t.expired(10.0)] == [c, a, b]
    beat(c, 0, 6.0, epoch=0)  # an older incarnation: ignored, keeps its place
    assert [e.agent_id for e in t.expired(4.5)] == [c, a]
    assert t.get(c) is not None and t.get(c).epoch == 1  # type: ignore[union-attr]


def test_each_batch_reports_its_valid_heartbeats_sent_times() -> None:
    batches: list[tuple[list[float], float]] = []
    t = LivenessTracker(
        KafkaConfig("127.0.0.1:9"), TOPICS, on_heartbeats=lambda s, at: batches.append((s, at))
    )
    p = partition_for("a", TOPICS.agent_partitions)
    before = time.time()
    batch = [FakeMessage(hb(seq=1), p), FakeMessage(hb(seq=0), p), FakeMessage(b"{", p)]
    t._handle(batch, 42.0, MemoryProducer())  # type: ignore[arg-type]
    ((sent, received),) = batches
    assert sent == [1.5, 1.5]  # both valid, the older one too; the bad record is not counted
    assert before <= received <= time.time()
    t._handle([FakeMessage(b"{", p)], 43.0, MemoryProducer())  # type: ignore[list-item]
    assert len(batches) == 1  # nothing valid: not called


def test_a_heartbeat_seen_before_proves_nothing_about_now() -> None:
    """A copy of a heartbeat (replayed as is, signature and all) must not keep a dead agent
    alive: only a newer sequence number of the epoch refreshes it."""
    t, producer, _ = tracker()
    p = partition_for("a", TOPICS.agent_partitions)
    for seq, at in ((4, 42.0), (4, 50.0)):
        batch = [FakeMessage(hb(epoch=2, seq=seq), p)]
        t._handle(batch, at, producer)  # type: ignore[arg-type]
    assert t.snapshot()["a"].last_seen == 42.0
    batch = [FakeMessage(hb(epoch=2, seq=5), p)]
    t._handle(batch, 51.0, producer)  # type: ignore[arg-type]
    assert t.snapshot()["a"].last_seen == 51.0
