"""The protocol records of a benchmark pool, decoded once, with indexes the pool queries.

A :class:`~agent_failover.dev.reading.TopicTail` reads task-events, control, tasks.priority,
fleet and the results topic; :meth:`Recorder.refresh` decodes what arrived since the last call.
Each item keeps its :class:`~agent_failover.dev.reading.Rec` (Kafka timestamp, local time seen).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

from agent_failover import models as m
from agent_failover.config import Topics
from agent_failover.dev.ledger import StepResult
from agent_failover.dev.reading import Rec, TopicTail
from agent_failover.errors import CodecError


class Recorder:
    """Decoded protocol records with their Kafka timestamps, decoded once, queried by the pool."""

    def __init__(self, bootstrap: str, topics: Topics, results_topic: str) -> None:
        self.topics = topics
        self.results_topic = results_topic
        self._decoders: dict[str, Any] = {
            topics.task_events: m.TaskEvent.decode,
            topics.control: m.Control.decode,
            topics.priority: m.Redispatch.decode,
            topics.fleet: m.FleetSummary.decode,
            results_topic: StepResult.decode,
        }
        self.tail = TopicTail(bootstrap, list(self._decoders))
        self._done = 0
        self.items: list[tuple[Rec, Any]] = []
        self._lock = threading.Lock()
        # Indexes kept up to date by refresh().
        self.epochs: dict[str, int] = {}  # agent -> newest epoch
        self.held: dict[tuple[str, int], dict[str, int]] = defaultdict(dict)  # (agent, epoch) ->
        self.checkpointed: dict[tuple[str, int], int] = {}  # (task, attempt) -> step
        self.finished: set[str] = set()
        self.submitted: set[str] = set()
        self.fleet: dict[str, m.FleetSummary] = {}  # monitor id -> newest summary

    def start(self) -> Recorder:
        self.tail.start()
        return self

    def stop(self) -> None:
        self.tail.stop()

    def refresh(self) -> list[tuple[Rec, Any]]:
        """Decode what arrived since the last call and update the indexes; returns every item."""
        with self._lock:
            recs = self.tail.snapshot()
            for rec in recs[self._done :]:
                try:
                    value = self._decoders[rec.topic](rec.value)
                except (CodecError, ValueError, TypeError):
                    continue
                self.items.append((rec, value))
                self._index(value)
            self._done = len(recs)
            return list(self.items)

    def monitored(self) -> set[tuple[str, int]]:
        """Agent epochs the monitor workers report healthy (so they have seen their heartbeats)."""
        self.refresh()
        return {(a.agent_id, a.epoch) for s in self.fleet.values() for a in s.agents}

    def _index(self, v: Any) -> None:
        if isinstance(v, m.FleetSummary):
            self.fleet[v.monitor_id] = v
            return
        if isinstance(v, m.TaskEvent):
            key = (v.agent_id, v.epoch)
            if v.kind is m.EventKind.AGENT_STARTED:
                self.epochs[v.agent_id] = v.epoch
            elif v.kind is m.EventKind.CLAIMED and v.task_id and v.attempt:
                self.held[key][v.task_id] = v.attempt
            elif v.kind is m.EventKind.CHECKPOINTED and v.task_id and v.attempt and v.checkpoint:
                self.checkpointed[(v.task_id, v.attempt)] = v.checkpoint.step
            elif v.kind in (m.EventKind.COMPLETED, m.EventKind.FAILED, m.EventKind.RELEASED):
                if v.task_id:
                    self.held[key].pop(v.task_id, None)
                if v.kind is not m.EventKind.RELEASED and v.task_id:
                    self.finished.add(v.task_id)
        elif isinstance(v, m.Control) and v.kind is m.ControlKind.FENCE:
            self.held.pop((v.agent_id, v.epoch), None)
