"""No single record stops an agent: a record whose handling raises, and bad records addressed to
it, are set aside (dead letters of source ``agent``) and the agent goes on taking work.

Before, a control or tasks.priority record whose handling raised killed the listener, which
stopped the agent; and an agent only skipped the bad records addressed to it, so nobody counted
them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from agent_failover.config import Topics
from agent_failover.models import (
    Control,
    ControlKind,
    DeadLetter,
    EventKind,
    Task,
    TaskEvent,
)
from agent_failover.sdk import Agent, control

from .conftest import DEADLINE_S, MakeReader, dispatch, new_work, run_in_thread, write

pytestmark = pytest.mark.broker


def completed(events: list[TaskEvent], task_id: str) -> bool:
    return any(e.kind is EventKind.COMPLETED and e.task_id == task_id for e in events)


def test_a_record_whose_handling_raises_is_set_aside_and_the_agent_keeps_working(
    start_agent: Callable[..., Agent],
    reader: MakeReader,
    topics: Topics,
    sdk_bootstrap: str,
    monkeypatch: Any,
) -> None:
    interpret = control.interpret_control

    def buggy(record: Control, *args: Any) -> Any:
        if record.decision_id == "poison":
            raise RuntimeError("a bug this record triggers")
        return interpret(record, *args)

    monkeypatch.setattr(control, "interpret_control", buggy)
    agent = start_agent(lambda ctx: None)
    runner, raised = run_in_thread(agent)
    drain = Control(
        kind=ControlKind.DRAIN,
        agent_id=agent.agent_id,
        epoch=agent.epoch + 1,  # another epoch's: it would change nothing here
        decision_id="poison",
        issued_at=time.time(),
    )
    write(sdk_bootstrap, topics.control, agent.agent_id, drain)
    dispatch(sdk_bootstrap, topics, agent, Task(task_id="after", task_type="test"))
    events = reader(topics.task_events, TaskEvent)
    events.wait_for(lambda recs: completed(recs, "after"), "the task sent after the poison")
    assert runner.is_alive() and raised == []
    letters = reader(topics.dead_letter, DeadLetter).wait_for(bool, "the dead letter")
    (letter,) = letters
    assert (letter.topic, letter.reason, letter.source, letter.agent_id) == (
        topics.control,
        "internal: RuntimeError",
        "agent",
        agent.agent_id,
    )
    agent.close()
    runner.join(DEADLINE_S)


def test_bad_records_addressed_to_the_agent_are_set_aside_by_it(
    start_agent: Callable[..., Agent],
    reader: MakeReader,
    topics: Topics,
    sdk_bootstrap: str,
) -> None:
    agent = start_agent(lambda ctx: None)
    runner, raised = run_in_thread(agent)
    key = agent.agent_id.encode()
    deep = new_work(agent, Task(task_id="deep", task_type="test")).to_dict()
    deep["task"]["payload"] = "DEEP"
    # A dispatch whose payload nests 300 levels: orjson reads it, no record may carry it.
    deep_value = orjson.dumps(deep).replace(b'"DEEP"', b"[" * 300 + b"]" * 300)
    producer = Producer({"bootstrap.servers": sdk_bootstrap, "partitioner": "murmur2_random"})
    producer.produce(topics.control, b"{not json", key)
    producer.produce(topics.priority, deep_value, key)
    producer.produce(topics.priority, b"x" * 900_000, key)
    producer.produce(topics.priority, b"{not json", b"someone-else")  # not addressed here
    assert producer.flush(DEADLINE_S) == 0
    dispatch(sdk_bootstrap, topics, agent, Task(task_id="after", task_type="test"))
    events = reader(topics.task_events, TaskEvent)
    events.wait_for(lambda recs: completed(recs, "after"), "the task sent after the bad ones")
    assert runner.is_alive() and raised == []
    letters = reader(topics.dead_letter, DeadLetter).read_to_end()
    assert sorted((d.topic, d.refusal, d.value_size) for d in letters) == sorted(
        [
            (topics.control, "not_json", 9),
            (topics.priority, "invalid", len(deep_value)),
            (topics.priority, "not_json", 900_000),
        ]
    )
    assert {(d.source, d.agent_id, d.key) for d in letters} == {
        ("agent", agent.agent_id, agent.agent_id)
    }
    deep_letter = next(d for d in letters if d.refusal == "invalid")
    assert "nests deeper than" in deep_letter.reason
    agent.close()
    runner.join(DEADLINE_S)
