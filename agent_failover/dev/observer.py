"""Watches the protocol topics live and turns records into a readable timeline.

Used by ``agent-failover dev`` and the end-to-end tests: one consumer, assigned every partition of
task-events, control, tasks.priority, failovers, fleet and the demo results topic, from the
beginning.
Each record is decoded and kept with the local time it was seen (``seen``), so a run can be
measured on one clock.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from agent_failover import models as m
from agent_failover.config import KafkaConfig, Topics
from agent_failover.dev.ledger import StepResult
from agent_failover.errors import CodecError


@dataclasses.dataclass(frozen=True)
class Seen:
    """A decoded record and when this process saw it (time.time())."""

    topic: str
    record: Any
    seen: float


class Observer:
    """Background consumer collecting every protocol record; thread-safe queries."""

    def __init__(
        self,
        kafka: KafkaConfig | str,
        topics: Topics,
        results_topic: str,
        on_record: Callable[[Seen], None] | None = None,
    ) -> None:
        self.kafka = KafkaConfig.coerce(kafka)
        self.topics = topics
        self.results_topic = results_topic
        self.on_record = on_record
        self.records: list[Seen] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="observer", daemon=True)
        self._decoders: dict[str, Callable[[bytes], Any]] = {
            topics.task_events: m.TaskEvent.decode,
            topics.control: m.Control.decode,
            topics.priority: m.Redispatch.decode,
            topics.failovers: m.Failover.decode,
            topics.fleet: m.FleetSummary.decode,
            results_topic: StepResult.decode,
        }

    def start(self) -> Observer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        consumer = Consumer(
            {
                **self.kafka.as_librdkafka_dict(),
                "group.id": f"af-observer-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
            }
        )
        try:
            assignment = []
            for topic in self._decoders:
                meta = consumer.list_topics(topic, timeout=30).topics[topic]
                assignment += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
            consumer.assign(assignment)
            while not self._stop.is_set():
                for msg in consumer.consume(500, 0.05):
                    name, value = msg.topic(), msg.value()
                    if msg.error() or name is None or value is None:
                        continue
                    try:
                        record = self._decoders[name](value)
                    except (CodecError, ValueError):
                        continue
                    seen = Seen(topic=name, record=record, seen=time.time())
                    with self._lock:
                        self.records.append(seen)
                    if self.on_record is not None:
                        self.on_record(seen)
        finally:
            consumer.close()

    def snapshot(self) -> list[Seen]:
        with self._lock:
            return list(self.records)

    def of(self, topic: str) -> list[Any]:
        """Records of one topic, in the order seen."""
        return [s.record for s in self.snapshot() if s.topic == topic]

    def events(
        self, kind: m.EventKind | None = None, agent_id: str | None = None
    ) -> list[m.TaskEvent]:
        return [
            e
            for e in self.of(self.topics.task_events)
            if (kind is None or e.kind is kind) and (agent_id is None or e.agent_id == agent_id)
        ]

    def completed_tasks(self) -> set[str]:
        return {e.task_id for e in self.events(m.EventKind.COMPLETED) if e.task_id}

    def fences(self, agent_id: str | None = None) -> list[m.Control]:
        return [
            c
            for c in self.of(self.topics.control)
            if c.kind is m.ControlKind.FENCE and (agent_id is None or c.agent_id == agent_id)
        ]

    def redispatches(self, from_agent: str | None = None) -> list[m.Redispatch]:
        return [
            r
            for r in self.of(self.topics.priority)
            if from_agent is None or r.from_agent_id == from_agent
        ]

    def monitored_partitions(self) -> set[int]:
        """Agent partitions owned by monitor workers, per each worker's newest fleet summary."""
        newest: dict[str, m.FleetSummary] = {}
        for summary in self.of(self.topics.fleet):
            newest[summary.monitor_id] = summary
        return {p for summary in newest.values() for p in summary.partitions}

    def monitor_ready(self) -> bool:
        """Whether monitor workers together own every agent partition (they publish it)."""
        return self.monitored_partitions() >= set(range(self.topics.agent_partitions))

    def results(self) -> list[StepResult]:
        return list(self.of(self.results_topic))

    def first_seen(self, predicate: Callable[[Seen], bool]) -> Seen | None:
        return next((s for s in self.snapshot() if predicate(s)), None)
