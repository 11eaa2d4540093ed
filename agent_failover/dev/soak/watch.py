"""What the soak needs to know while it runs, read live from task-events and fleet.

The fault injector asks whether an agent has announced itself and holds work, and which monitor
worker owns a partition; the run asks whether every task is done. These answers steer the run
only (when to fire, when to stop waiting): the verdict never uses them, it reads everything back
to the high watermark once the run is over.
"""

from __future__ import annotations

import threading

from agent_failover import models as m
from agent_failover.config import KafkaConfig, Topics
from agent_failover.dev.reading import Rec, TopicTail
from agent_failover.errors import CodecError


class Watch:
    """A live view of the run, kept up to date by a background reader; thread-safe."""

    def __init__(self, kafka: KafkaConfig | str, topics: Topics) -> None:
        self.topics = topics
        self._lock = threading.Lock()
        self._started: dict[str, float] = {}  # agent id -> newest agent_started time
        self._held: dict[str, set[str]] = {}  # agent id -> tasks it claimed and still holds
        self._attempts: dict[str, int] = {}  # task id -> highest attempt claimed
        self._completed: dict[str, int] = {}  # task id -> highest attempt completed
        self._owners: dict[int, str] = {}  # agent partition -> monitor id, newest summary wins
        self._outcomes: set[str] = set()  # task ids with an outcome
        self._tail = TopicTail(
            kafka,
            [topics.task_events, topics.fleet, topics.outcomes],
            on_records=self._on_records,
            keep=False,
            name="soak-watch",
        )

    def start(self) -> Watch:
        """Start reading (returns once every partition is assigned)."""
        self._tail.start()
        return self

    def stop(self) -> None:
        """Stop reading."""
        self._tail.stop()

    def _on_records(self, recs: list[Rec]) -> None:
        for rec in recs:
            try:
                if rec.topic == self.topics.fleet:
                    self._on_summary(m.FleetSummary.decode(rec.value or b""))
                elif rec.topic == self.topics.outcomes:
                    outcome = m.TaskOutcome.decode(rec.value or b"")
                    with self._lock:
                        self._outcomes.add(outcome.task_id)
                else:
                    self._on_event(m.TaskEvent.decode(rec.value or b""))
            except CodecError:
                continue  # not this view's to judge: the verdict counts undecodable records

    def _on_summary(self, summary: m.FleetSummary) -> None:
        with self._lock:
            for partition in summary.partitions:
                self._owners[partition] = summary.monitor_id

    def _on_event(self, ev: m.TaskEvent) -> None:
        with self._lock:
            if ev.kind is m.EventKind.AGENT_STARTED:
                self._started[ev.agent_id] = max(ev.at, self._started.get(ev.agent_id, 0.0))
                return
            if ev.task_id is None or ev.attempt is None:
                return
            held = self._held.setdefault(ev.agent_id, set())
            if ev.kind is m.EventKind.CLAIMED:
                held.add(ev.task_id)
                self._attempts[ev.task_id] = max(ev.attempt, self._attempts.get(ev.task_id, 0))
            elif ev.kind in (m.EventKind.RELEASED, m.EventKind.FAILED):
                held.discard(ev.task_id)
            elif ev.kind is m.EventKind.COMPLETED:
                self._completed[ev.task_id] = max(ev.attempt, self._completed.get(ev.task_id, 0))
                for tasks in self._held.values():
                    tasks.discard(ev.task_id)

    def started_since(self, agent_id: str, since: float) -> bool:
        """Whether ``agent_id`` announced an epoch at or after ``since`` (wall clock)."""
        with self._lock:
            return self._started.get(agent_id, 0.0) >= since

    def holds_work(self, agent_id: str) -> bool:
        """Whether ``agent_id`` claimed a task that nobody completed and it did not let go."""
        with self._lock:
            return bool(self._held.get(agent_id))

    def monitored(self, partitions: int) -> bool:
        """Whether monitor workers' summaries cover every agent partition."""
        with self._lock:
            return set(self._owners) >= set(range(partitions))

    def owner_pid(self, partition: int) -> int | None:
        """The process id of the monitor worker that last claimed ``partition``, if known.

        A worker's id is its host and process id (``host-pid``, docs/protocol.md).
        """
        with self._lock:
            owner = self._owners.get(partition)
        tail = owner.rsplit("-", 1)[-1] if owner else ""
        return int(tail) if tail.isdigit() else None

    def done(self, tasks: set[str]) -> bool:
        """Whether every task completed by the highest attempt claimed for it so far, and the
        monitor published its outcome (what a submitter waits for)."""
        with self._lock:
            return all(
                self._completed.get(t, 0) >= self._attempts.get(t, 1) and t in self._outcomes
                for t in tasks
            )
