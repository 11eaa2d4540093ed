"""Fixtures of the broker tests: one embedded Tansu broker per test session, and polling."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from agent_failover.broker.embedded import EmbeddedBroker

T = TypeVar("T")


@pytest.fixture(scope="session")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """An embedded Tansu broker shared by the session's broker tests (use unique topic names)."""
    log_path: Path = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with EmbeddedBroker(log_path=log_path) as broker:
        yield broker


def wait_for(
    probe: Callable[[], T | None], *, timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> T:
    """Call ``probe`` until it returns something other than None/False; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or probe}")
        time.sleep(interval)


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
