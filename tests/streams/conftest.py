"""Fixtures of the monitor's broker tests: a broker, a fresh topic set, monitor processes.

The broker is the session's shared one (``broker`` in tests/conftest.py). Each test gets its own
topic prefix and monitor app id, so tests never see each other. A test may start several monitor
workers (one process each, one consumer group), and play agents with :class:`Fleet`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from agent_failover import models as m
from agent_failover.broker.select import BrokerHandle
from agent_failover.config import Topics
from agent_failover.dev.processes import Proc, spawn, stop_all
from agent_failover.dev.reading import TopicReader
from agent_failover.dev.waiting import eventually
from agent_failover.models import Record
from agent_failover.signing import Signer
from agent_failover.topics import ensure_topics


@pytest.fixture(scope="session")
def streams_bootstrap(broker: BrokerHandle) -> str:
    """Bootstrap servers of the broker the monitor's broker tests use."""
    return broker.bootstrap_servers


@dataclasses.dataclass
class MonitorHarness:
    """A topic set on the test broker, a producer acting as agents, and monitor processes.

    Workers are named; the first is ``monitor`` unless named otherwise, and logs to ``log_path``.
    The producer signs with ``signer`` (by default: nothing, like a fleet without a key).
    """

    bootstrap: str
    topics: Topics
    app_id: str
    log_path: Path
    producer: Producer
    procs: dict[str, Proc] = dataclasses.field(default_factory=dict)
    signer: Signer = dataclasses.field(default_factory=Signer)
    _readers: dict[str, tuple[TopicReader, list[Any]]] = dataclasses.field(default_factory=dict)

    def send(
        self, topic: str, key: str, record: Record | bytes, signer: Signer | None = None
    ) -> None:
        """Produce as an agent would: keyed, murmur2 (Java) partitioner, acknowledged; signed
        by ``signer`` (default: the harness's)."""
        self.produce(topic, key, record.encode() if isinstance(record, Record) else record, signer)
        assert self.producer.flush(30) == 0

    def produce(self, topic: str, key: str, value: bytes, signer: Signer | None = None) -> None:
        """Queue one record, signed by ``signer`` (default: the harness's)."""
        headers = (signer or self.signer).headers(topic, key, value)
        self.producer.produce(topic, value, key.encode(), headers=headers)

    @property
    def proc(self) -> Proc | None:
        """The first worker started."""
        return next(iter(self.procs.values()), None)

    def log_file(self, name: str = "monitor") -> Path:
        return self.log_path.with_name(f"{name}.log")

    def monitor_id(self, name: str) -> str:
        """The id worker ``name`` writes in its records (host and process id)."""
        return f"{socket.gethostname()}-{self.procs[name].pid}"

    def start_monitor(self, name: str = "monitor", **env: str) -> None:
        """Start ``python -m agent_failover.streams.runner`` for this topic set, as worker
        ``name``."""
        full = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "AGENT_FAILOVER_TOPIC_PREFIX": self.topics.prefix,
            "AGENT_FAILOVER_AGENT_PARTITIONS": str(self.topics.agent_partitions),
            "AGENT_FAILOVER_TASK_PARTITIONS": str(self.topics.task_partitions),
            "AGENT_FAILOVER_CHECKPOINT_PARTITIONS": str(self.topics.checkpoint_partitions),
            "AGENT_FAILOVER_MONITOR_APP_ID": self.app_id,
            "AGENT_FAILOVER_METRICS_HOST": "127.0.0.1",
            "AGENT_FAILOVER_METRICS_PORT": "0",
            "AGENT_FAILOVER_MONITOR_DATA_DIR": str(self.log_path.parent / f"{self.app_id}-{name}"),
            **env,
        }
        self.procs[name] = spawn(
            name, ["-m", "agent_failover.streams.runner"], self.log_file(name), env=full
        )

    def eventually(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        """:func:`eventually`, failing at once if a monitor process has exited."""

        def alive_check() -> Any:
            for name, proc in self.procs.items():
                if not proc.alive:
                    raise AssertionError(f"{name} exited ({proc.returncode}) before {what}")
            return check()

        return eventually(alive_check, timeout, what)

    def summaries(self) -> dict[str, m.FleetSummary]:
        """Each worker's newest fleet summary, in log order (what every worker's directory
        holds)."""
        return {s.monitor_id: s for s in self.records(self.topics.fleet, m.FleetSummary.decode)}

    def lists(self, worker: str, agent_id: str) -> bool:
        """Whether worker id ``worker``'s newest summary lists ``agent_id`` as healthy."""
        summary = self.summaries().get(worker)
        return summary is not None and any(a.agent_id == agent_id for a in summary.agents)

    def start_two_workers(
        self, timeout: float, **env: str
    ) -> tuple[tuple[str, frozenset[int]], tuple[str, frozenset[int]]]:
        """Start ``w1``, wait until it owns every partition, start ``w2`` and wait until the two
        split them; returns each one's id and partitions."""
        every = frozenset(range(self.topics.agent_partitions))
        self.start_monitor("w1", **env)
        w1 = self.monitor_id("w1")
        self.eventually(
            lambda: w1 in (now := self.summaries()) and set(now[w1].partitions) == every,
            timeout,
            "w1 owning every partition",
        )
        self.start_monitor("w2", **env)
        w2 = self.monitor_id("w2")

        def split() -> tuple[frozenset[int], frozenset[int]] | None:
            now = self.summaries()
            if w1 not in now or w2 not in now:
                return None
            p1, p2 = frozenset(now[w1].partitions), frozenset(now[w2].partitions)
            return (p1, p2) if p1 and p2 and not p1 & p2 and p1 | p2 == every else None

        mine, theirs = self.eventually(split, timeout, "the two workers splitting the partitions")
        return (w1, mine), (w2, theirs)

    def log_text(self, name: str = "monitor") -> str:
        path = self.log_file(name)
        return path.read_text(errors="replace") if path.exists() else ""

    def http_base(self, name: str = "monitor") -> str | None:
        """``http://host:port`` of worker ``name``'s endpoints, once its log names them."""
        found = re.search(r"metrics and probes on (http://[\w.:]+)", self.log_text(name))
        return found.group(1) if found else None

    def records(
        self, topic: str, decode: Callable[[bytes], Any], *, to_end: bool = False
    ) -> list[Any]:
        """Everything on ``topic`` so far (all partitions, from the start), decoded.

        ``to_end``: read to the high watermark first, before asserting that something was *not*
        written; otherwise only what has arrived.
        """
        if topic not in self._readers:
            self._readers[topic] = (TopicReader(self.bootstrap, topic), [])
        reader, seen = self._readers[topic]
        recs = reader.read_to_end() if to_end else reader.poll(0.2)
        seen.extend(decode(r.value) for r in recs if r.value is not None)
        return list(seen)

    def close(self) -> None:
        stop_all(self.procs.values(), 20)
        for reader, _ in self._readers.values():
            reader.close()
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
        for name in harness.procs:
            print(f"----- {name} -----\n{harness.log_text(name)[-20000:]}")


class Fleet:
    """Heartbeats for simulated agents from one thread, as the SDK's heartbeat thread would."""

    def __init__(self, harness: MonitorHarness) -> None:
        self.harness = harness
        self.beating: dict[str, tuple[int, int, m.Pool]] = {}  # agent -> epoch, capacity, pool
        self.seq = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self, agent_id: str, epoch: int, capacity: int, pool: m.Pool) -> None:
        self.harness.send(
            self.harness.topics.task_events,
            agent_id,
            m.TaskEvent(
                kind=m.EventKind.AGENT_STARTED,
                agent_id=agent_id,
                epoch=epoch,
                at=time.time(),
                capacity=capacity,
                pool=pool,
            ),
        )
        with self._lock:
            self.beating[agent_id] = (epoch, capacity, pool)

    def kill(self, agent_id: str) -> None:
        with self._lock:
            del self.beating[agent_id]

    def _run(self) -> None:
        topic = self.harness.topics.heartbeats
        while not self._stop.wait(0.2):
            with self._lock:
                beating = dict(self.beating)
            for agent_id, (epoch, capacity, pool) in beating.items():
                hb = m.Heartbeat(agent_id, epoch, self.seq, time.time(), 0.2, capacity, pool=pool)
                self.harness.produce(topic, agent_id, hb.encode())
            self.seq += 1
            self.harness.producer.poll(0)

    def __enter__(self) -> Fleet:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def fleet(monitor_harness: MonitorHarness) -> Iterator[Fleet]:
    """Simulated agents heartbeating on the harness's topic set."""
    with Fleet(monitor_harness) as f:
        yield f


def task_event(
    kind: m.EventKind, agent: str, epoch: int, task_id: str, **kw: object
) -> m.TaskEvent:
    """A task event of attempt 1 (with the task itself for claimed)."""
    task = m.Task(task_id=task_id, task_type="demo", payload={"steps": 5})
    with_task = kind is m.EventKind.CLAIMED
    return m.TaskEvent(
        kind=kind,
        agent_id=agent,
        epoch=epoch,
        at=time.time(),
        task_id=task_id,
        attempt=1,
        task=task if with_task else None,
        **kw,  # type: ignore[arg-type]
    )


def claimed_and_checkpointed(
    harness: MonitorHarness, agent: str, epoch: int, task_id: str
) -> m.CheckpointRef:
    """``agent`` claims ``task_id`` and checkpoints step 3; then a record that is not JSON
    follows on its partition (bad input must not stop anything). Returns the checkpoint."""
    ref = m.CheckpointRef(partition=1, offset=7, step=3, task_id=task_id, attempt=1, epoch=epoch)
    topic = harness.topics.task_events
    harness.send(topic, agent, task_event(m.EventKind.CLAIMED, agent, epoch, task_id))
    checkpointed = task_event(m.EventKind.CHECKPOINTED, agent, epoch, task_id, checkpoint=ref)
    harness.send(topic, agent, checkpointed)
    harness.send(topic, agent, b"{not json")
    return ref
