"""No single record stops the monitor: what used to stop a stream, the heartbeat thread or a task
partition, record by record.

- A record whose handling raises ended the faust agent's stream (faust restarted it; the record
  was neither set aside nor counted): now it is dead-lettered (``internal: <type>``) and the next
  record is handled.
- A dead letter the broker refused (a copy too large, once) raised out of the handler: the faust
  agent crashed, and the heartbeat thread dropped the rest of its batch, then slept a second,
  which the stall guard took for a starved thread. Now the record is counted, its lost copy too,
  and the rest of the batch is read.
- A task record whose placement raised was retried every second, forever, holding up its
  partition: now it is set aside and the next task placed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from agent_failover.config import KafkaConfig, Topics
from agent_failover.models import DeadLetter, EventKind, Heartbeat, Redispatch
from agent_failover.partitioner import partition_for
from agent_failover.streams import router
from agent_failover.streams.liveness import LivenessTracker
from tests.inmemory import MemoryProducer, Produced, consumed
from tests.streams.factories import event, task
from tests.streams.harness import T0, Worker

TOPICS = Topics(prefix="x.", agent_partitions=2, task_partitions=1)
A, B = "a", "b"


def worker() -> Worker:
    w = Worker({}, topics=TOPICS)
    w.monitor.ownership.set({0, 1}, T0)
    return w


def letters(w: Worker) -> list[DeadLetter]:
    return [DeadLetter.decode(s.value) for s in w.outbox.take(TOPICS.dead_letter)]


def counted(w: Worker, topic: str, reason: str) -> float | None:
    labels = {"topic": topic, "reason": reason, "source": "monitor"}
    return w.gauge("agent_failover_dead_letters_total", labels)


def test_a_record_whose_handling_raises_is_set_aside_and_the_next_one_applied(
    monkeypatch: Any,
) -> None:
    w = worker()
    applied = router.apply_event

    def buggy(old: Any, ev: Any, partition: int) -> Any:
        if ev.agent_id == A:
            raise RuntimeError("a bug this event triggers")
        return applied(old, ev, partition)

    monkeypatch.setattr(router, "apply_event", buggy)
    for agent in (A, B):
        started = event(EventKind.AGENT_STARTED, agent=agent).encode()
        w.deliver(TOPICS.task_events, agent, started, T0, partition_for(agent, 2))
    assert list(w.table) == [B]
    (letter,) = letters(w)
    assert (letter.reason, letter.refusal, letter.key) == ("internal: RuntimeError", "internal", A)
    assert "a bug" not in letter.reason  # the stack and the message stay in the log
    assert counted(w, "task-events", "internal") == 1


class Refusing:
    """The worker's ``send``: the broker refuses every dead letter, takes everything else."""

    def __init__(self, send: Any) -> None:
        self._send = send

    async def __call__(self, topic: str, key: bytes, value: bytes, p: int) -> Awaitable[Any]:
        if topic == TOPICS.dead_letter:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        result: Awaitable[Any] = await self._send(topic, key, value, p)
        return result


def test_a_dead_letter_the_broker_refuses_is_counted_lost_and_reading_goes_on() -> None:
    w = worker()
    refusing = Refusing(w.outbox.send)
    w.monitor.router._dead_letters._send = refusing  # type: ignore[attr-defined]
    pa, pb = partition_for(A, 2), partition_for(B, 2)
    w.deliver(TOPICS.control, A, b"k" * 600_000, T0, pa)  # no JSON, and a huge value too
    w.deliver(TOPICS.task_events, B, event(EventKind.AGENT_STARTED, agent=B).encode(), T0, pb)
    assert list(w.table) == [B]
    assert counted(w, "control", "not_json") == 1
    assert w.gauge("agent_failover_dead_letters_lost_total", {"topic": "control"}) == 1


def test_the_heartbeat_thread_reads_the_whole_batch_when_a_dead_letter_is_refused() -> None:
    def refuse(record: Produced) -> BaseException | None:
        return KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))

    tracker = LivenessTracker(KafkaConfig("127.0.0.1:9"), TOPICS)
    agents = [f"agent-{n}" for n in range(6)]
    batch = []
    for n, agent in enumerate(agents):
        p = partition_for(agent, 2)
        beat = Heartbeat(agent, 1, 0, 1.0, 1.0, 1).encode()
        batch.append(consumed(TOPICS.heartbeats, p, 2 * n, agent.encode(), beat))
        # Two bad heartbeats a second with ~600 KB keys, between the good ones.
        batch.append(consumed(TOPICS.heartbeats, p, 2 * n + 1, b"k" * 600_000, b"{"))
    tracker._handle(batch, 7.0, MemoryProducer(refuse))  # type: ignore[arg-type]
    assert sorted(tracker.snapshot()) == agents
    assert {e.last_seen for e in tracker.snapshot().values()} == {7.0}


def test_a_task_record_whose_placement_raises_is_set_aside_and_the_next_placed(
    monkeypatch: Any,
) -> None:
    w = Worker({}, topics=TOPICS)
    w.feed.partitions = frozenset({0})
    chosen = w.monitor.intake._choose

    def buggy(now: float) -> Any:
        if w.monitor.intake._waiting is not None and w.monitor.intake._waiting.task_id == "bad":
            raise ValueError("a bug this task triggers")
        return chosen(now)

    monkeypatch.setattr(w.monitor.intake, "_choose", buggy)

    async def run() -> None:
        w.live.beat([A], T0, capacity=2)
        await w.atick(T0, owned=(0, 1))
        await asyncio.wait_for(w.place(task("bad").encode(), offset=0), 10)
        await asyncio.wait_for(w.place(task("good").encode(), offset=1), 10)

    asyncio.run(run())
    decided = [Redispatch.decode(s.value) for s in w.outbox.take(TOPICS.assigned)]
    assert [d.task_id for d in decided] == ["good"]
    (letter,) = letters(w)
    assert (letter.topic, letter.offset, letter.reason) == (TOPICS.tasks, 0, "internal: ValueError")
    assert w.monitor.intake.next_offset(0) == 2
