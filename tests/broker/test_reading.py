"""Reading topics back to their high watermark (agent_failover.dev.reading) on a real broker."""

from __future__ import annotations

import threading
import uuid

import pytest
from confluent_kafka import Producer

from agent_failover.broker.embedded import EmbeddedBroker
from agent_failover.dev.reading import Rec, TopicReader, TopicTail, read_topic
from agent_failover.errors import BrokerError
from tests.broker.conftest import new_topic, produce_batches

pytestmark = pytest.mark.broker


def values(recs: list[Rec]) -> list[bytes | None]:
    return [r.value for r in recs]


def written(first: int, count: int) -> list[bytes | None]:
    """The values ``produce_batches`` writes, v<first> .. v<first + count - 1>."""
    return [f"v{n}".encode() for n in range(first, first + count)]


def test_read_topic_reads_the_last_batch_that_list_offsets_leaves_out(
    tansu: EmbeddedBroker,
) -> None:
    topic = new_topic(tansu.bootstrap_servers, partitions=2)
    # Three batches in partition 0: on Tansu ListOffsets(LATEST) says 11 here, the log ends at 15.
    produce_batches(tansu.bootstrap_servers, topic, batches=3, per_batch=5)
    recs = read_topic(tansu.bootstrap_servers, topic)
    assert values(recs) == written(0, 15)
    assert {(r.topic, r.partition) for r in recs} == {(topic, 0)}
    assert [r.offset for r in recs] == list(range(15))


def test_a_reader_reads_on_from_where_it_stopped(tansu: EmbeddedBroker) -> None:
    topic = new_topic(tansu.bootstrap_servers)
    with TopicReader(tansu.bootstrap_servers, topic) as reader:
        assert reader.read_to_end() == []  # an empty topic has an end too
        produce_batches(tansu.bootstrap_servers, topic, batches=2, per_batch=3)
        assert values(reader.read_to_end()) == written(0, 6)
        assert reader.positions == {(topic, 0): 6}
        assert reader.read_to_end() == []  # nothing new: not a second copy
        producer = Producer({"bootstrap.servers": tansu.bootstrap_servers})
        producer.produce(topic, value=b"late", partition=0)
        assert producer.flush(10) == 0
        assert values(reader.read_to_end()) == [b"late"]


def test_a_tail_is_up_to_date_after_sync(tansu: EmbeddedBroker) -> None:
    topic = new_topic(tansu.bootstrap_servers)
    handed_on: list[Rec] = []
    lock = threading.Lock()

    def on_records(recs: list[Rec]) -> None:
        with lock:
            handed_on.extend(recs)

    with TopicTail(tansu.bootstrap_servers, [topic], on_records=on_records) as tail:
        produce_batches(tansu.bootstrap_servers, topic, batches=3, per_batch=4)
        tail.sync()
        assert values(tail.snapshot()) == written(0, 12)
        assert values(tail.snapshot(topic)) == written(0, 12)
        assert tail.snapshot("another-topic") == []
        with lock:
            assert handed_on == tail.snapshot()


def test_a_missing_topic_is_a_clear_error(tansu: EmbeddedBroker) -> None:
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    with pytest.raises(BrokerError, match=f"cannot read topic {missing}"):
        read_topic(tansu.bootstrap_servers, missing, timeout=10)
    with pytest.raises(BrokerError, match=f"cannot read topic {missing}"):
        TopicTail(tansu.bootstrap_servers, [missing]).start()
