"""The heartbeat thread on a real broker: when a partition counts as read to its end."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Producer

from agent_failover.config import KafkaConfig, Topics
from agent_failover.dev.waiting import eventually
from agent_failover.models import Heartbeat
from agent_failover.partitioner import partition_for
from agent_failover.streams.catchup import PartitionLag
from agent_failover.streams.liveness import LivenessTracker
from agent_failover.topics import ensure_topics

pytestmark = pytest.mark.broker

DEADLINE = 60.0  # generous: a loaded 2-core box is slow, never wrong


def test_partitions_count_as_caught_up_once_read_to_their_end(streams_bootstrap: str) -> None:
    topics = Topics(prefix=f"t{uuid.uuid4().hex[:8]}.", agent_partitions=4)
    ensure_topics(streams_bootstrap, topics)
    agent = "agent-busy"
    busy = partition_for(agent, topics.agent_partitions)
    producer = Producer({"bootstrap.servers": streams_bootstrap, "linger.ms": 50})

    def beat(seq: int) -> None:
        hb = Heartbeat(agent, 1, seq, time.time(), 1.0, 1)
        producer.produce(topics.heartbeats, hb.encode(), agent.encode(), partition=busy)

    # History in three batches: the development broker's ListOffsets(LATEST) then points into
    # the last one, so the reader starts a few records before the end (docs/tansu.md, quirk a).
    for batch in range(3):
        for n in range(5):
            beat(batch * 5 + n)
        assert producer.flush(10) == 0
    tracker = LivenessTracker(KafkaConfig(streams_bootstrap), topics)
    tracker.start()
    try:
        assert tracker.caught_up == frozenset()
        tracker.assign(range(topics.agent_partitions))
        everything = frozenset(range(topics.agent_partitions))
        eventually(lambda: tracker.caught_up == everything, DEADLINE, "every partition read")
        lag = tracker.lag()
        assert sorted(lag) == sorted(everything)
        assert all(p.records == 0 and p.seconds is not None for p in lag.values()), lag
        assert tracker.behind(time.monotonic()) >= 0.0

        beat(100)  # a heartbeat after the takeover is read, and the partition stays caught up
        assert producer.flush(10) == 0
        eventually(
            lambda: (e := tracker.get(agent)) is not None and e.seq == 100, DEADLINE, "seq 100"
        )
        assert busy in tracker.caught_up

        kept = frozenset({busy})
        tracker.assign(kept)  # partitions given up are no longer tracked
        eventually(lambda: set(tracker.lag()) == kept, DEADLINE, "the lag of the kept partition")
        assert tracker.caught_up <= kept
        assert tracker.lag()[busy] != PartitionLag(None, None)
    finally:
        tracker.stop()
