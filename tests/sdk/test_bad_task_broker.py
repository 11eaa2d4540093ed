"""Bad records on the task topic: dead-lettered by the agent, which goes on working."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Producer

from agent_failover.config import Topics
from agent_failover.models import MAX_JSON_DEPTH, DeadLetter, EventKind, Task, TaskEvent
from agent_failover.models.deadletter import MAX_KEY_CHARS
from agent_failover.sdk import Agent, TaskSubmitter

from .conftest import DEADLINE_S, Reader

pytestmark = pytest.mark.broker


def produce(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    producer.produce(topic, value, key)
    assert producer.flush(DEADLINE_S) == 0


def test_a_too_deep_task_and_a_huge_key_become_dead_letters_and_the_agent_carries_on(
    start_agent: Callable[..., Agent],
    reader: Callable[[str, type[Any]], Reader],
    topics: Topics,
    sdk_bootstrap: str,
) -> None:
    agent = start_agent(lambda ctx: "ok")
    depth = 300  # decodes (orjson reads 1,024 levels) but could not be written in `claiming`
    deep = (
        b'{"task_id":"deep","task_type":"x","schema_version":1,"payload":'
        + b"[" * depth
        + b"]" * depth
        + b"}"
    )
    produce(sdk_bootstrap, topics.tasks, b"deep", deep)
    produce(sdk_bootstrap, topics.tasks, b"k" * 900_000, b"{not json")
    good = Task(task_id=f"t-{uuid.uuid4().hex[:8]}", task_type="x", payload={"n": 1})
    with TaskSubmitter(sdk_bootstrap, topics) as submitter:
        submitter.submit(good)

    letters = Reader(sdk_bootstrap, topics.dead_letter, DeadLetter)
    try:
        got = letters.wait_for(lambda recs: len(recs) >= 2, "two dead letters")
    finally:
        letters.close()
    by_reason = {("deeper" in d.reason): d for d in got}
    assert f"'payload' nests deeper than {MAX_JSON_DEPTH} levels" in by_reason[True].reason
    huge = by_reason[False]
    assert "not JSON" in huge.reason
    assert (huge.key_size, huge.key_cut, huge.value_cut) == (900_000, True, False)
    assert huge.key is not None and len(huge.key) == MAX_KEY_CHARS

    events = reader(topics.task_events, TaskEvent)
    events.wait_for(
        lambda recs: any(e.kind is EventKind.COMPLETED and e.task_id == good.task_id for e in recs),
        "the good task to complete on the same agent",
    )
    assert agent.agent_id in {e.agent_id for e in events.records}
