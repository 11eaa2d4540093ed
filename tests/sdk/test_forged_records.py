"""An agent of a signing fleet against forged records: fences, dispatches and checkpoints that the
fleet did not sign are never acted on; signed ones are. (Agents do not read the task topic: forged
tasks are the monitor's to refuse, tests/integration/test_intake.py.)"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Producer

from agent_failover.config import KafkaConfig, Topics
from agent_failover.dev.waiting import eventually
from agent_failover.errors import FencedError, Refusal
from agent_failover.models import (
    Checkpoint,
    CheckpointRef,
    Control,
    ControlKind,
    DeadLetter,
    DispatchReason,
    EventKind,
    Redispatch,
    Source,
    Task,
    TaskEvent,
)
from agent_failover.sdk import Agent, TaskContext
from agent_failover.sdk.checkpoint import CheckpointReader
from agent_failover.sdk.kafka import assigned_consumer_conf
from agent_failover.signing import Signer

from .conftest import DEADLINE_S, UNSIGNED, MakeReader, dispatch, run_in_thread, write

pytestmark = pytest.mark.broker

KEY = "the-fleet-signing-key-0123456789"
FLEET = Signer(KEY.encode())
ROGUE = Signer(b"a-key-of-someone-else-0123456789")


@pytest.fixture
def signed_agent(agent_config: Callable[..., Any]) -> Callable[..., Agent]:
    """Factory: a started agent of the signing fleet (closed by the caller's ``with``)."""

    def make(handler: Callable[[TaskContext], Any], **overrides: Any) -> Agent:
        kafka = agent_config().kafka
        signed = KafkaConfig(kafka.bootstrap_servers, signing_key=KEY)
        return Agent(agent_config(kafka=signed, **overrides), handler).start()

    return make


def redispatch(agent: Agent, task_id: str, **fields: Any) -> Redispatch:
    return Redispatch(
        task=Task(task_id=task_id, task_type="test"),
        attempt=fields.pop("attempt", 2),
        target_agent_id=agent.agent_id,
        target_epoch=agent.epoch,
        reason=DispatchReason.HEARTBEAT_TIMEOUT,
        from_agent_id="dead",
        from_epoch=1,
        decision_id=f"d-{task_id}",
        dispatched_at=time.time(),
        **fields,
    )


def completed(events: list[TaskEvent], task_id: str) -> bool:
    return any(e.kind is EventKind.COMPLETED and e.task_id == task_id for e in events)


def test_only_a_fence_signed_by_the_fleet_stops_the_agent(
    signed_agent: Callable[..., Agent],
    reader: MakeReader,
    topics: Topics,
    sdk_bootstrap: str,
) -> None:
    agent = signed_agent(lambda ctx: None)
    runner, stopped = run_in_thread(agent)

    def fence(decision_id: str) -> Control:
        return Control(
            kind=ControlKind.FENCE,
            agent_id=agent.agent_id,
            epoch=agent.epoch,
            decision_id=decision_id,
            issued_at=time.time(),
            reason=DispatchReason.HEARTBEAT_TIMEOUT,
        )

    # In one partition, in this order: the first fence that counts must be the signed one.
    write(sdk_bootstrap, topics.control, agent.agent_id, fence("forged"), UNSIGNED)
    write(sdk_bootstrap, topics.control, agent.agent_id, fence("rogue"), ROGUE)
    write(sdk_bootstrap, topics.control, agent.agent_id, fence("monitor"), FLEET)
    runner.join(DEADLINE_S)
    assert not runner.is_alive()
    assert len(stopped) == 1 and isinstance(stopped[0], FencedError), stopped
    assert "(monitor, heartbeat_timeout)" in str(stopped[0])
    # Addressed to it: the agent set both forgeries aside.
    letters = reader(topics.dead_letter, DeadLetter).read_to_end()
    assert [(d.offset, d.refusal, d.source, d.agent_id) for d in letters] == [
        (0, Refusal.BAD_SIGNATURE, Source.AGENT, agent.agent_id),
        (1, Refusal.BAD_SIGNATURE, Source.AGENT, agent.agent_id),
    ]


def test_a_forged_redispatch_is_never_run(
    signed_agent: Callable[..., Agent],
    reader: MakeReader,
    topics: Topics,
    sdk_bootstrap: str,
) -> None:
    runs: list[tuple[str, int]] = []
    running = threading.Event()
    release = threading.Event()

    def handler(ctx: TaskContext) -> None:
        runs.append((ctx.task_id, ctx.attempt))
        if ctx.task_id == "submitted":
            running.set()
            while not release.wait(0.01) and not ctx.stopping:
                pass

    agent = signed_agent(handler, capacity=3)
    try:
        dispatch(sdk_bootstrap, topics, agent, Task(task_id="submitted", task_type="test"), FLEET)
        eventually(running.is_set, DEADLINE_S, "the submitted task to run")
        priority, key = topics.priority, agent.agent_id
        # A task nobody submitted, and a second copy of the running one, both forged...
        write(sdk_bootstrap, priority, key, redispatch(agent, "never-submitted"), UNSIGNED)
        write(sdk_bootstrap, priority, key, redispatch(agent, "submitted"), ROGUE)
        # ... then one the monitor signed: once it has run, the forged ones were read before it.
        write(sdk_bootstrap, priority, key, redispatch(agent, "moved-here"), FLEET)
        events = reader(topics.task_events, TaskEvent)
        events.wait_for(lambda recs: completed(recs, "moved-here"), "the signed redispatch")
        release.set()
        events.wait_for(lambda recs: completed(recs, "submitted"), "the submitted task")
        assert sorted(runs) == [("moved-here", 2), ("submitted", 1)]
    finally:
        agent.close()


def test_a_forged_checkpoint_is_not_resumed_from(
    signed_agent: Callable[..., Agent],
    reader: MakeReader,
    topics: Topics,
    sdk_bootstrap: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    resumed: list[tuple[int, Any]] = []
    agent = signed_agent(lambda ctx: resumed.append((ctx.next_step, ctx.state)))
    try:
        task_id = f"t-{uuid.uuid4().hex[:6]}"
        # Written after the kill by someone else: claims steps 0-8 are done.
        forged = Checkpoint(
            task_id=task_id,
            attempt=1,
            agent_id="dead",
            epoch=1,
            step=8,
            state={"forged": True},
            written_at=time.time(),
        )
        partition, offset = write(sdk_bootstrap, topics.checkpoints, task_id, forged, UNSIGNED)
        ref = CheckpointRef(
            partition=partition, offset=offset, step=8, task_id=task_id, attempt=1, epoch=1
        )
        with caplog.at_level(logging.WARNING, "agent_failover.sdk.checkpoint"):
            write(
                sdk_bootstrap,
                topics.priority,
                agent.agent_id,
                redispatch(agent, task_id, checkpoint=ref),
                FLEET,
            )
            events = reader(topics.task_events, TaskEvent)
            events.wait_for(lambda recs: completed(recs, task_id), "the resumed task")
        assert resumed == [(0, None)]
        assert any("bad signature" in r.getMessage() for r in caplog.records)
    finally:
        agent.close()


def write_batch(bootstrap: str, topic: str, records: list[Checkpoint]) -> list[tuple[int, int]]:
    """Write checkpoints of one task signed by the fleet, in one produce batch."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 50}
    )
    where: list[tuple[int, int]] = []
    for record in records:
        value = record.encode()
        producer.produce(
            topic,
            key=record.task_id,
            value=value,
            headers=FLEET.headers(topic, record.task_id, value),
            on_delivery=lambda err, msg: where.append((msg.partition() or 0, msg.offset() or 0)),
        )
    assert producer.flush(DEADLINE_S) == 0
    return sorted(where)


def checkpoint_of(task_id: str, step: int, *, attempt: int = 1, epoch: int = 1) -> Checkpoint:
    return Checkpoint(
        task_id=task_id,
        attempt=attempt,
        agent_id="a",
        epoch=epoch,
        step=step,
        state={"step": step},
        written_at=time.time(),
    )


@pytest.fixture
def checkpoint_reader(sdk_bootstrap: str, topics: Topics) -> Iterator[CheckpointReader]:
    """A reader of the fleet (signing key), with a deadline no test should ever reach."""
    kafka = KafkaConfig(sdk_bootstrap, signing_key=KEY)
    conf = assigned_consumer_conf(kafka, "forged-test", 10)
    reader = CheckpointReader(conf, topics.checkpoints, kafka.signer, timeout=3 * DEADLINE_S)
    yield reader
    reader.close()


def test_a_reference_names_the_one_checkpoint_it_may_resume(
    checkpoint_reader: CheckpointReader,
    sdk_bootstrap: str,
    topics: Topics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    task_id = f"t-{uuid.uuid4().hex[:6]}"
    steps = [checkpoint_of(task_id, step) for step in range(5)]
    # One batch: the last records lie past the end some brokers report (docs/tansu.md).
    where = write_batch(sdk_bootstrap, topics.checkpoints, steps)
    partition, last = where[-1]

    def ref(**changes: Any) -> CheckpointRef:
        named = {"task_id": task_id, "attempt": 1, "epoch": 1, "step": 4}
        fields = {"partition": partition, "offset": last, **named, **changes}
        return CheckpointRef(**fields)

    found = checkpoint_reader.read(ref(), task_id)
    assert found is not None and found.state == {"step": 4}
    with caplog.at_level(logging.WARNING, "agent_failover.sdk.checkpoint"):
        for wrong in (ref(epoch=2), ref(attempt=2), ref(step=3), ref(offset=last - 1)):
            assert checkpoint_reader.read(wrong, task_id) is None, wrong
        assert checkpoint_reader.read(ref(task_id="other"), task_id) is None
    reasons = [r.getMessage() for r in caplog.records]
    assert len(reasons) == 5 and all("starting from step 0" in r for r in reasons), reasons
    assert "the redispatch named attempt 1 epoch 2 step 4" in reasons[0]
    assert "it names task 'other'" in reasons[4]


def test_a_reference_past_the_end_is_refused_without_waiting_for_it(
    checkpoint_reader: CheckpointReader,
    sdk_bootstrap: str,
    topics: Topics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    task_id = f"t-{uuid.uuid4().hex[:6]}"
    ((partition, offset),) = write_batch(
        sdk_bootstrap, topics.checkpoints, [checkpoint_of(task_id, 0)]
    )
    far = CheckpointRef(
        partition=partition, offset=10**12, step=8, task_id=task_id, attempt=1, epoch=1
    )
    empty = dataclasses.replace(far, partition=(partition + 1) % topics.checkpoint_partitions)
    with caplog.at_level(logging.WARNING, "agent_failover.sdk.checkpoint"):
        assert checkpoint_reader.read(far, task_id) is None
        assert checkpoint_reader.read(empty, task_id) is None
    # Refused for what the partition holds, not after the reader's deadline (3 minutes).
    reasons = [r.getMessage() for r in caplog.records]
    assert f"the partition ends at offset {offset + 1}" in reasons[0], reasons
    assert "the partition is empty" in reasons[1], reasons
