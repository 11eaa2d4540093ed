"""Baseline worker: a plain confluent-kafka consumer-group member, as users build it today.

Tasks are step records on a partitioned topic (one record per step; executing a step writes the
task's next step to the same partition, a workflow chain); progress is the committed offset:
execute the step, write its result and the next step record, commit the offset synchronously.
Nothing of agent-failover is used. Failover is the consumer group's own: a dead member's
partitions go to a survivor after the session timeout and the rebalance, and the survivor resumes
at the committed offset.

Every step result and every assignment change is written to an events topic (one JSON object per
record, wall-clock times) for the harness to measure. Run as::

    python -m bench.cg_worker BOOTSTRAP STEPS_TOPIC EVENTS_TOPIC GROUP NAME SESSION_MS HB_MS STEP_S

``SESSION_MS`` / ``HB_MS`` ``0`` mean the client defaults (45000 / 3000 in librdkafka 2.x).
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition


def main(argv: list[str]) -> int:
    bootstrap, steps_topic, events_topic, group, name, session_ms, hb_ms, step_s = argv
    low, high = (float(x) for x in step_s.split(","))
    events = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})

    def emit(kind: str, **fields: Any) -> None:
        events.produce(
            events_topic,
            key=name.encode(),
            value=orjson.dumps({"kind": kind, "worker": name, "at": time.time(), **fields}),
        )
        events.flush(10)

    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "partition.assignment.strategy": "cooperative-sticky",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 10,
    }
    if os.environ.get("BENCH_RDKAFKA_DEBUG"):
        conf["debug"] = os.environ["BENCH_RDKAFKA_DEBUG"]
    if int(session_ms):
        conf["session.timeout.ms"] = int(session_ms)
    if int(hb_ms):
        conf["heartbeat.interval.ms"] = int(hb_ms)
    consumer = Consumer(conf)

    def on_assign(_c: Consumer, parts: list[TopicPartition]) -> None:
        emit("assign", partitions=sorted(p.partition for p in parts))

    def on_revoke(_c: Consumer, parts: list[TopicPartition]) -> None:
        emit("revoke", partitions=sorted(p.partition for p in parts))

    def on_lost(_c: Consumer, parts: list[TopicPartition]) -> None:
        emit("lost", partitions=sorted(p.partition for p in parts))

    stopping = False

    def on_term(_sig: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    consumer.subscribe([steps_topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    emit("started")
    try:
        while not stopping:
            msg = consumer.poll(0.05)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    print(f"consumer error: {msg.error()}", file=sys.stderr, flush=True)
                continue
            task = orjson.loads(msg.value())
            started = time.time()
            time.sleep(random.uniform(low, high))  # the step's work (a simulated model call)
            emit(
                "step",
                partition=msg.partition(),
                offset=msg.offset(),
                task_id=task["task_id"],
                step=task["step"],
                started_at=started,
            )
            # The task's next step (or the next task) goes back to the same partition before
            # this step's offset is committed: the partition's backlog stays one record deep
            # (Tansu ignores fetch size limits, so a deep backlog would all be prefetched and
            # a taken-over partition would wait behind it).
            nxt = (
                {"task_id": task["task_id"], "step": task["step"] + 1, "steps": task["steps"]}
                if task["step"] + 1 < task["steps"]
                else {"task_id": f"{task['task_id']}+", "step": 0, "steps": task["steps"]}
            )
            events.produce(
                steps_topic,
                key=nxt["task_id"].encode(),
                value=orjson.dumps(nxt),
                partition=msg.partition(),
            )
            events.flush(10)
            try:
                consumer.commit(message=msg, asynchronous=False)
            except Exception as exc:  # the partition was taken away: its new owner redoes it
                print(f"commit failed: {exc}", file=sys.stderr, flush=True)
    finally:
        consumer.close()
        events.flush(10)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
