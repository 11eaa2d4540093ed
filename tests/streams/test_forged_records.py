"""A monitor of a signing fleet: records the fleet did not sign are dead-lettered with reason
``bad_signature`` and counted, on the faust agent's topics and on the heartbeat thread's; they
change nothing. Everything the monitor writes is signed."""

from __future__ import annotations

import asyncio
import dataclasses

from confluent_kafka import Message

from agent_failover.config import KafkaConfig, Topics
from agent_failover.models import (
    ControlKind,
    DeadLetter,
    DispatchReason,
    EventKind,
    FleetAgent,
    FleetSummary,
    Heartbeat,
    Pool,
    Redispatch,
)
from agent_failover.partitioner import partition_for
from agent_failover.signing import Signer
from agent_failover.streams.fleet import FleetDirectory
from agent_failover.streams.liveness import LivenessTracker
from tests.inmemory import MemoryProducer
from tests.streams.factories import event, new_work, redispatch, task
from tests.streams.harness import T0, Worker

KEY = "the-fleet-signing-key-0123456789"
KAFKA = KafkaConfig("127.0.0.1:9", signing_key=KEY)
FLEET = KAFKA.signer
ROGUE = Signer(b"a-key-of-someone-else-0123456789")
UNSIGNED = Signer()
TOPICS = Topics(prefix="x.", agent_partitions=2)
A = "a"


def worker() -> Worker:
    w = Worker({}, topics=TOPICS, kafka=KAFKA)
    w.monitor.ownership.set({0, 1}, T0)
    return w


def letters(w: Worker) -> list[DeadLetter]:
    sent = w.outbox.take(TOPICS.dead_letter)
    return [DeadLetter.decode(s.value) for s in sent]


def test_forged_events_decisions_and_redispatches_are_dead_lettered_and_change_nothing() -> None:
    w = worker()
    p = w.monitor.ownership.partition_of(A)
    started = event(EventKind.AGENT_STARTED, agent=A, epoch=2).encode()
    fence = w.monitor.writer._control(ControlKind.FENCE, A, 1, DispatchReason.HEARTBEAT_TIMEOUT, ())
    for forger in (UNSIGNED, ROGUE):
        w.deliver(TOPICS.task_events, A, started, T0, p, signer=forger)
        w.deliver(TOPICS.control, A, fence.encode(), T0, p, signer=forger)
        w.deliver(TOPICS.priority, A, redispatch("t-1", target=A).encode(), T0, p, signer=forger)
    reasons = [d.reason for d in letters(w)]
    assert len(reasons) == 6 and all(r.startswith("bad signature: ") for r in reasons), reasons
    assert w.table == {}
    assert not w.outbox.take(TOPICS.priority) and not w.outbox.take(TOPICS.failovers)
    for topic in ("task-events", "control", "tasks.priority"):
        labels = {"topic": topic, "reason": "bad_signature", "source": "monitor"}
        assert w.gauge("agent_failover_dead_letters_total", labels) == 2
    # The same records signed by the fleet count.
    w.deliver(TOPICS.task_events, A, started, T0, p)
    assert w.table[A].epoch == 2


def test_everything_the_monitor_writes_is_signed() -> None:
    w = worker()
    w.deliver(TOPICS.task_events, A, b"{not json", T0, w.monitor.ownership.partition_of(A))
    (letter,) = w.outbox.take(TOPICS.dead_letter)
    # The worker's ``send`` (streams.app) adds the headers; what it is given verifies.
    headers = FLEET.headers(letter.topic, letter.key, letter.value)
    FLEET.check(letter.topic, letter.key, letter.value, headers)


def consumed(topic: str, key: str, value: bytes, signer: Signer, partition: int) -> Message:
    headers = signer.headers(topic, key, value)
    return Message(
        topic=topic,
        partition=partition,
        offset=1,
        key=key.encode(),
        value=value,
        headers=headers,  # type: ignore[arg-type]
    )


def test_forged_heartbeats_and_summaries_are_dead_lettered_by_the_heartbeat_thread() -> None:
    letters: list[tuple[str, str]] = []
    directory = FleetDirectory("me", TOPICS.agent_partitions)
    tracker = LivenessTracker(
        KAFKA,
        TOPICS,
        directory=directory,
        on_dead_letter=lambda topic, why: letters.append((topic, why)),
    )
    p = partition_for(A, TOPICS.agent_partitions)

    def beat(epoch: int, seq: int) -> bytes:
        return Heartbeat(A, epoch, seq, 1.0, 1.0, 1).encode()

    summary = FleetSummary("w2", 1.0, (0, 1), (FleetAgent("b", 5, 4, 0, Pool.STANDBY),)).encode()
    producer = MemoryProducer()
    batch = [
        consumed(TOPICS.heartbeats, A, beat(1, 0), FLEET, p),
        # A new epoch for a live agent would fail its current one at once: forged, it must not.
        consumed(TOPICS.heartbeats, A, beat(2, 0), UNSIGNED, p),
        consumed(TOPICS.heartbeats, A, beat(2, 1), ROGUE, p),
        consumed(TOPICS.fleet, "w2", summary, ROGUE, 0),
    ]
    tracker._handle(batch, T0, producer)  # type: ignore[arg-type]
    assert tracker.snapshot()[A].epoch == 1
    assert directory.candidates(T0, owned=()) == []
    assert letters == [
        (TOPICS.heartbeats, "bad_signature"),
        (TOPICS.heartbeats, "bad_signature"),
        (TOPICS.fleet, "bad_signature"),
    ]
    # Its dead letters are signed too.
    for topic, value, key, headers in (dataclasses.astuple(r) for r in producer.sent):
        assert DeadLetter.decode(value).reason.startswith("bad signature")
        FLEET.check(topic, key, value, headers)


def test_forged_tasks_and_intake_decisions_are_dead_lettered_and_change_nothing() -> None:
    # The intake's read sites: a task nobody of the fleet submitted is never placed, and a
    # decision no monitor of the fleet wrote is never forwarded (it would win: the first
    # decision per task record counts).
    w = worker()
    forged = new_work("t-1", target="intruder", offset=2)  # about the genuine record below

    async def run() -> None:
        w.live.beat([A], T0)
        await w.atick(T0, owned=(0, 1))
        for offset, forger in enumerate((UNSIGNED, ROGUE)):
            await w.assign(forged.encode(), offset=offset, signer=forger)
            await w.place(task("forged").encode(), offset=offset, signer=forger)
        await w.place(task("t-1").encode(), offset=2)
        (decided,) = w.outbox.take(TOPICS.assigned)
        await w.assign(decided.value)

    asyncio.run(run())
    (forwarded,) = w.outbox.take(TOPICS.priority)
    rd = Redispatch.decode(forwarded.value)
    assert (rd.task_id, rd.target_agent_id, forwarded.key) == ("t-1", A, A.encode())
    reasons = [(d.topic, d.reason.split(":")[0]) for d in letters(w)]
    assert sorted(reasons) == sorted(
        [(TOPICS.assigned, "bad signature"), (TOPICS.tasks, "bad signature")] * 2
    )
    for topic in ("tasks", "tasks.assigned"):
        labels = {"topic": topic, "reason": "bad_signature", "source": "monitor"}
        assert w.gauge("agent_failover_dead_letters_total", labels) == 2
    assert w.gauge("agent_failover_tasks_dispatched_total") == 1
