"""Fixtures of the SDK tests: a broker, a fresh topic set per test, agents, a record reader, and
:func:`dispatch`, which plays the monitor's intake.

``sdk_bootstrap`` is the session's ``broker`` (tests/conftest.py decides which one). No monitor
runs here: work reaches an agent the way the monitor sends it, as a dispatch on its partition of
``tasks.priority``.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from confluent_kafka import Producer

from agent_failover.broker.select import BrokerHandle
from agent_failover.config import AgentConfig, CheckpointPolicy, KafkaConfig, Topics
from agent_failover.dev.reading import Rec, TopicReader
from agent_failover.dev.waiting import eventually
from agent_failover.models import DispatchReason, Record, Redispatch, SourceRef, Task
from agent_failover.sdk import Agent
from agent_failover.sdk.agent import Handler
from agent_failover.signing import Signer
from agent_failover.topics import ensure_topics

R = TypeVar("R", bound=Record)

#: Generous: a loaded 2-core box. Only failures wait this long.
DEADLINE_S = 60.0


@pytest.fixture(scope="session")
def sdk_bootstrap(broker: BrokerHandle) -> str:
    """Bootstrap address of the session's broker (see tests/conftest.py)."""
    return broker.bootstrap_servers


@pytest.fixture
def topics(sdk_bootstrap: str) -> Topics:
    """A fresh topic set for one test (unique prefix), created."""
    topics = Topics(prefix=f"sdk-{uuid.uuid4().hex[:10]}.")
    ensure_topics(sdk_bootstrap, topics)
    return topics


class Reader:
    """Reads a whole topic from the beginning (assigned, no group), decoding every record."""

    def __init__(self, bootstrap: str, topic: str, record: type[R]) -> None:
        self._reader = TopicReader(bootstrap, topic)
        self._record = record
        self.records: list[Any] = []
        self.positions: list[tuple[int, int]] = []

    def _add(self, recs: list[Rec]) -> None:
        for rec in recs:
            self.records.append(self._record.decode(rec.value or b""))
            self.positions.append((rec.partition, rec.offset))

    def poll(self) -> None:
        """Read what has arrived."""
        self._add(self._reader.poll())

    def read_to_end(self) -> list[Any]:
        """Read everything written so far (to the high watermark): before asserting that
        something was *not* written. Returns the records."""
        self._add(self._reader.read_to_end(DEADLINE_S))
        return self.records

    def wait_for(
        self, predicate: Callable[[list[Any]], bool], what: str, timeout: float = DEADLINE_S
    ) -> list[Any]:
        """Read until ``predicate(records)`` holds; returns the records."""

        def check() -> bool:
            self.poll()
            return predicate(self.records)

        eventually(check, timeout, what)
        return self.records

    def close(self) -> None:
        self._reader.close()


@pytest.fixture
def reader(sdk_bootstrap: str, topics: Topics) -> Iterator[Callable[[str, type[Any]], Reader]]:
    """Factory: ``reader(topic_name, RecordClass)``; closed after the test."""
    made: list[Reader] = []

    def make(topic: str, record: type[Any]) -> Reader:
        r = Reader(sdk_bootstrap, topic, record)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


@pytest.fixture
def agent_config(sdk_bootstrap: str, topics: Topics) -> Callable[..., AgentConfig]:
    """Factory of agent configs on this test's topics (own group, short waits, fast beats)."""

    def make(**overrides: Any) -> AgentConfig:
        settings: dict[str, Any] = {
            "kafka": KafkaConfig(sdk_bootstrap),
            "agent_id": f"agent-{uuid.uuid4().hex[:8]}",
            "topics": topics,
            "heartbeat_interval": 0.2,
            "fetch_wait_max_ms": 10,
            "close_timeout": 10.0,
            "checkpoint_policy": CheckpointPolicy.every_step(),
        }
        settings.update(overrides)
        return AgentConfig(**settings)

    return make


@pytest.fixture
def start_agent(agent_config: Callable[..., AgentConfig]) -> Iterator[Callable[..., Agent]]:
    """Factory: ``start_agent(handler, **config_overrides)`` -> a started Agent, closed after."""
    agents: list[Agent] = []

    def make(handler: Handler, **overrides: Any) -> Agent:
        agent = Agent(agent_config(**overrides), handler)
        agents.append(agent)
        return agent.start()

    yield make
    for agent in agents:
        agent.close()


_offsets = itertools.count()
#: Signs nothing: what a writer without the fleet's key sends.
#: The ``start_agent`` fixture's type, and the ``reader`` fixture's.
Start = Callable[..., Agent]
MakeReader = Callable[[str, type[Any]], "Reader"]


def task(task_id: str | None = None, **payload: Any) -> Task:
    """A test task: a fresh id unless given, ``payload`` as given."""
    return Task(task_id=task_id or f"t-{uuid.uuid4().hex[:8]}", task_type="test", payload=payload)


UNSIGNED = Signer()


def write(
    bootstrap: str, topic: str, key: str, record: Record, signer: Signer = UNSIGNED
) -> tuple[int, int]:
    """Write as another party (the monitor, a dead agent, a forger) would, signed by ``signer``
    (default: unsigned); returns (partition, offset)."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "acks": "all"}
    )
    where: list[tuple[int, int]] = []
    value = record.encode()
    producer.produce(
        topic,
        key=key,
        value=value,
        headers=signer.headers(topic, key, value),
        on_delivery=lambda err, msg: where.append((msg.partition() or 0, msg.offset() or 0)),
    )
    assert producer.flush(DEADLINE_S) == 0
    return where[0]


def new_work(agent: Any, task: Task) -> Redispatch:
    """The dispatch of ``task`` to ``agent`` as new work, as the monitor's intake writes it."""
    return Redispatch(
        task=task,
        attempt=1,
        target_agent_id=agent.agent_id,
        target_epoch=agent.epoch,
        reason=DispatchReason.NEW,
        decision_id=uuid.uuid4().hex,
        dispatched_at=time.time(),
        source=SourceRef(partition=0, offset=next(_offsets)),
    )


def dispatch(
    bootstrap: str, topics: Topics, agent: Any, task: Task, signer: Signer = UNSIGNED
) -> None:
    """Send ``task`` to ``agent`` as new work (attempt 1), signed by ``signer``."""
    write(bootstrap, topics.priority, agent.agent_id, new_work(agent, task), signer)


def run_in_thread(agent: Agent) -> tuple[threading.Thread, list[BaseException]]:
    """Start ``agent.run()`` in a thread; the list receives what ``run()`` raised."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            agent.run(handle_signals=False)
        except BaseException as exc:
            raised.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    return runner, raised
