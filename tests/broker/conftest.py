"""Fixtures of the broker tests: one embedded Tansu broker per test session, topics, batches."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_failover.broker.embedded import EmbeddedBroker
from agent_failover.topics import TopicSpec, ensure_topics


@pytest.fixture(scope="session")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """An embedded Tansu broker shared by the session's broker tests (use unique topic names)."""
    log_path: Path = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with EmbeddedBroker(log_path=log_path) as broker:
        yield broker


def new_topics(bootstrap: str, *names: str, partitions: int = 1) -> None:
    """Create plain topics (``partitions`` each) for one test."""
    ensure_topics(bootstrap, specs=[TopicSpec(n, partitions, {}, "test") for n in names])


def new_topic(bootstrap: str, partitions: int = 1) -> str:
    """Create a topic with a unique name; return the name."""
    name = f"lim-{uuid.uuid4().hex[:8]}"
    new_topics(bootstrap, name, partitions=partitions)
    return name


def produce_batches(
    bootstrap: str,
    topic: str,
    *,
    batches: int,
    per_batch: int,
    key: bytes = b"k",
    json: bool = False,
) -> None:
    """Write values v0, v1, ... to partition 0 of ``topic``, one produce batch per ``per_batch``.

    Batches matter on Tansu: ListOffsets(LATEST) answers with the last batch's base offset + 1.
    """
    from confluent_kafka import Producer

    # linger lets each group of produce() calls become one batch; flush() closes the batch.
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 100})
    n = 0
    for _ in range(batches):
        for _ in range(per_batch):
            value = f'"v{n}"' if json else f"v{n}"
            producer.produce(topic, key=key, value=value.encode(), partition=0)
            n += 1
        assert producer.flush(10) == 0
