"""Fixtures of the SDK tests: a broker, a fresh topic set per test, agents, and a record reader.

``sdk_bootstrap`` is the session's ``broker`` (tests/conftest.py decides which one).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from confluent_kafka import Consumer, TopicPartition

from agent_failover.broker.select import BrokerHandle
from agent_failover.config import AgentConfig, CheckpointPolicy, KafkaConfig, Topics
from agent_failover.dev.cluster import wait_until as poll_until
from agent_failover.models import Record
from agent_failover.sdk import Agent
from agent_failover.sdk.agent import Handler
from agent_failover.topics import ensure_topics

R = TypeVar("R", bound=Record)

#: Generous: a loaded 2-core box with a 3 s group join on Tansu. Only failures wait this long.
DEADLINE_S = 60.0


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = DEADLINE_S) -> None:
    """Poll ``predicate`` until true; fail the test naming ``what`` after ``timeout``."""
    try:
        poll_until(predicate, timeout, what=what)
    except TimeoutError as exc:
        raise AssertionError(str(exc)) from None


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

    def __init__(self, bootstrap: str, topic: str, partitions: int, record: type[R]) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "sdk-test-reader.unused",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
            }
        )
        self._consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        self._record = record
        self.records: list[Any] = []
        self.positions: list[tuple[int, int]] = []

    def poll(self) -> None:
        """Read what has arrived."""
        for msg in self._consumer.consume(num_messages=500, timeout=0.05):
            if msg.error():
                continue
            self.records.append(self._record.decode(msg.value()))
            self.positions.append((msg.partition() or 0, msg.offset() or 0))

    def wait_for(
        self, predicate: Callable[[list[Any]], bool], what: str, timeout: float = DEADLINE_S
    ) -> list[Any]:
        """Read until ``predicate(records)`` holds; returns the records."""

        def check() -> bool:
            self.poll()
            return predicate(self.records)

        wait_until(check, what, timeout)
        return self.records

    def close(self) -> None:
        self._consumer.close()


@pytest.fixture
def reader(sdk_bootstrap: str, topics: Topics) -> Iterator[Callable[[str, type[Any]], Reader]]:
    """Factory: ``reader(topic_name, RecordClass)``; closed after the test."""
    made: list[Reader] = []

    def make(topic: str, record: type[Any]) -> Reader:
        partitions = (
            topics.task_partitions
            if topic == topics.tasks
            else topics.checkpoint_partitions
            if topic == topics.checkpoints
            else topics.agent_partitions
        )
        r = Reader(sdk_bootstrap, topic, partitions, record)
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
            "group_id": f"{topics.prefix}agents",
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
