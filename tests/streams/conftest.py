"""Fixtures of the monitor's broker tests: a broker, a fresh topic set, a monitor process.

The broker is ``KAFKA_BOOTSTRAP_SERVERS`` if set, else an embedded Tansu for this module's
session. Each test gets its own topic prefix and monitor app id, so tests never see each other.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from agent_failover.config import Topics
from agent_failover.models import Record
from agent_failover.topics import ensure_topics


@pytest.fixture(scope="session")
def streams_bootstrap() -> Iterator[str]:
    """Bootstrap servers of the broker the monitor's broker tests use."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    from agent_failover.broker.embedded import EmbeddedBroker

    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


def assert_eventually(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)  # polling interval, not synchronisation


@dataclasses.dataclass
class MonitorHarness:
    """A topic set on the test broker, a producer acting as agents, and a monitor process."""

    bootstrap: str
    topics: Topics
    app_id: str
    log_path: Path
    producer: Producer
    proc: subprocess.Popen[bytes] | None = None
    _readers: dict[str, tuple[Consumer, list[Any]]] = dataclasses.field(default_factory=dict)

    def send(self, topic: str, key: str, record: Record | bytes) -> None:
        """Produce as an agent would: keyed, murmur2 (Java) partitioner, acknowledged."""
        value = record if isinstance(record, bytes) else record.encode()
        self.producer.produce(topic, value, key.encode())
        assert self.producer.flush(30) == 0

    def start_monitor(self, **env: str) -> None:
        """Start ``python -m streams.runner`` for this topic set."""
        full = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "AGENT_FAILOVER_TOPIC_PREFIX": self.topics.prefix,
            "AGENT_FAILOVER_AGENT_PARTITIONS": str(self.topics.agent_partitions),
            "AGENT_FAILOVER_TASK_PARTITIONS": str(self.topics.task_partitions),
            "AGENT_FAILOVER_CHECKPOINT_PARTITIONS": str(self.topics.checkpoint_partitions),
            "AGENT_FAILOVER_MONITOR_APP_ID": self.app_id,
            "AGENT_FAILOVER_METRICS_PORT": "0",
            "AGENT_FAILOVER_MONITOR_DATA_DIR": str(self.log_path.parent / self.app_id),
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams.runner"],
                env=full,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def eventually(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        """:func:`assert_eventually`, failing at once if the monitor process has exited."""

        def alive_check() -> Any:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"monitor exited ({self.proc.returncode}) before {what}")
            return check()

        return assert_eventually(alive_check, timeout, what)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def records(self, topic: str, decode: Callable[[bytes], Any]) -> list[Any]:
        """Everything on ``topic`` so far (all partitions, from the start), decoded."""
        if topic not in self._readers:
            consumer = Consumer(
                {
                    "bootstrap.servers": self.bootstrap,
                    "group.id": f"reader-{uuid.uuid4().hex}",
                    "enable.auto.commit": False,
                    "fetch.wait.max.ms": 20,
                }
            )
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
            self._readers[topic] = (consumer, [])
        consumer, seen = self._readers[topic]
        for msg in consumer.consume(500, 0.2):
            value = msg.value()
            if msg.error() is None and value is not None:
                seen.append(decode(value))
        return list(seen)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for consumer, _ in self._readers.values():
            consumer.close()
        self.producer.flush(10)


@pytest.fixture
def monitor_harness(streams_bootstrap: str, tmp_path: Path) -> Iterator[MonitorHarness]:
    """A fresh topic set (unique prefix) with a producer; call ``start_monitor()`` to run one."""
    suffix = uuid.uuid4().hex[:8]
    topics = Topics(
        prefix=f"t{suffix}.", agent_partitions=4, task_partitions=2, checkpoint_partitions=2
    )
    ensure_topics(streams_bootstrap, topics)
    producer = Producer(
        {"bootstrap.servers": streams_bootstrap, "partitioner": "murmur2_random", "linger.ms": 1}
    )
    harness = MonitorHarness(
        streams_bootstrap, topics, f"afm-{suffix}", tmp_path / "monitor.log", producer
    )
    try:
        yield harness
    finally:
        harness.close()
        # Shown by pytest only when the test failed.
        print(harness.log_text()[-20000:])
