"""Watches the protocol topics live and turns records into a readable timeline.

Used by ``agent-failover dev`` and the end-to-end tests: one background reader
(:class:`~agent_failover.dev.reading.TopicTail`) over every partition of task-events, control,
tasks.priority, failovers, fleet, outcomes and the demo results topic, from the beginning. Each
record is decoded and kept with the local time it was seen (``seen``), so a run can be measured
on one clock.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

from agent_failover import models as m
from agent_failover.config import KafkaConfig, Topics
from agent_failover.dev.ledger import StepResult
from agent_failover.dev.reading import Rec, TopicTail
from agent_failover.errors import CodecError


@dataclasses.dataclass(frozen=True)
class Seen:
    """A decoded record and when this process saw it (time.time())."""

    topic: str
    record: Any
    seen: float


class Observer:
    """Background reader collecting every protocol record, decoded; thread-safe queries."""

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
        self._decoders: dict[str, Callable[[bytes], Any]] = {
            topics.task_events: m.TaskEvent.decode,
            topics.control: m.Control.decode,
            topics.priority: m.Redispatch.decode,
            topics.failovers: m.Failover.decode,
            topics.fleet: m.FleetSummary.decode,
            topics.outcomes: m.TaskOutcome.decode,
            results_topic: StepResult.decode,
        }
        self._tail = TopicTail(
            self.kafka, list(self._decoders), on_records=self._decode, keep=False, name="observer"
        )

    def start(self) -> Observer:
        """Start reading (returns once every partition is assigned)."""
        self._tail.start()
        return self

    def stop(self) -> None:
        """Stop reading."""
        self._tail.stop()

    def sync(self, timeout: float = 30.0) -> None:
        """Return once every record written before this call has been read.

        Call it before concluding that something did *not* happen (no second fence, ...).
        """
        self._tail.sync(timeout)

    def _decode(self, recs: list[Rec]) -> None:
        for rec in recs:
            if rec.value is None:
                continue
            try:
                record = self._decoders[rec.topic](rec.value)
            except (CodecError, ValueError):
                continue  # not ours to judge: the monitor dead-letters bad records
            seen = Seen(topic=rec.topic, record=record, seen=rec.seen)
            with self._lock:
                self.records.append(seen)
            if self.on_record is not None:
                self.on_record(seen)

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
        """Tasks some agent reported completed."""
        return {e.task_id for e in self.events(m.EventKind.COMPLETED) if e.task_id}

    def outcomes(self) -> dict[str, m.TaskOutcome]:
        """The outcome of each task that has one: the first published (the one that counts)."""
        first: dict[str, m.TaskOutcome] = {}
        for outcome in self.of(self.topics.outcomes):
            first.setdefault(outcome.task_id, outcome)
        return first

    def holdings(self) -> dict[str, dict[str, int]]:
        """Per agent, the tasks it claimed that are not completed, each with the newest step it
        checkpointed (-1: none yet); what :func:`~agent_failover.dev.victim.busiest_agent` takes.
        """
        done = self.completed_tasks()
        held: dict[str, dict[str, int]] = {}
        for e in self.events():
            if not e.task_id or e.task_id in done:
                continue
            if e.kind is m.EventKind.CLAIMED:
                held.setdefault(e.agent_id, {}).setdefault(e.task_id, -1)
            elif e.kind is m.EventKind.CHECKPOINTED and e.checkpoint is not None:
                tasks = held.get(e.agent_id, {})
                if e.task_id in tasks:
                    tasks[e.task_id] = max(tasks[e.task_id], e.checkpoint.step)
        return held

    def fences(self, agent_id: str | None = None) -> list[m.Control]:
        return [
            c
            for c in self.of(self.topics.control)
            if c.kind is m.ControlKind.FENCE and (agent_id is None or c.agent_id == agent_id)
        ]

    def redispatches(self, from_agent: str | None = None) -> list[m.Redispatch]:
        """Tasks moved (attempt 2 and later), of one agent or of all."""
        return [
            r
            for r in self.of(self.topics.priority)
            if r.reason is not m.DispatchReason.NEW
            and (from_agent is None or r.from_agent_id == from_agent)
        ]

    def new_work(self) -> list[m.Redispatch]:
        """The monitor's dispatches of new work (attempt 1), copies included."""
        return [r for r in self.of(self.topics.priority) if r.reason is m.DispatchReason.NEW]

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
