"""An independent exactly-once ledger, rebuilt from what is on the broker.

The demo's tasks write one ``StepResult`` per executed step to a results topic, *before* the step's
checkpoint. Executing a step twice is allowed (a failover redoes at most the steps after the last
checkpoint); *committing* it twice is not. A result counts (is committed) only if it lies on the
task's attempt chain (docs/protocol.md, "Which writes count"):

* attempt ``a`` < last attempt: steps ``limit[a-1] < s <= limit[a]``, where ``limit[a]`` is the
  checkpoint step named by the re-dispatch of attempt ``a + 1`` (-1 if it named none);
* the last attempt: every step after ``limit[last-1]``, and the task must be completed.

The task's outcome (``outcomes``, the first per task counts) must say completed, by the last
attempt; a later outcome of the task must be a copy of the first.

The ledger reads four topics back (results, ``tasks.priority``, ``task-events``, ``outcomes``) and
reports, per task, the committed steps, duplicates, gaps, the steps executed but not committed
(redone) and what its outcomes say.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import orjson

from agent_failover import models as m
from agent_failover.config import KafkaConfig, Topics
from agent_failover.dev.reading import read_topic
from agent_failover.errors import CodecError


@dataclasses.dataclass(frozen=True)
class StepResult:
    """What a demo task writes for each step it executes (demo-level, not part of the protocol).

    ``at`` is when the step started (wall clock), after the resume point was loaded: the moment
    a resumed attempt is back at work.
    """

    task_id: str
    attempt: int
    step: int
    agent_id: str
    epoch: int
    output: str
    at: float

    def encode(self) -> bytes:
        return orjson.dumps(dataclasses.asdict(self))

    @classmethod
    def decode(cls, raw: bytes) -> StepResult:
        data = orjson.loads(raw)
        try:
            return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})
        except (KeyError, TypeError) as exc:
            raise CodecError(f"invalid step result: {exc}") from exc


@dataclasses.dataclass
class TaskLedger:
    """The verdict for one task."""

    task_id: str
    steps: int
    completed_attempts: list[int] = dataclasses.field(default_factory=list)
    committed: dict[int, list[StepResult]] = dataclasses.field(default_factory=dict)
    redone: list[StepResult] = dataclasses.field(default_factory=list)
    attempts: int = 1
    outcomes: list[m.TaskOutcome] = dataclasses.field(default_factory=list)

    @property
    def duplicates(self) -> list[int]:
        return sorted(s for s, rs in self.committed.items() if len(rs) > 1)

    @property
    def missing(self) -> list[int]:
        return [s for s in range(self.steps) if s not in self.committed]

    @property
    def ok(self) -> bool:
        return not self.problems()

    def outcome_problems(self) -> list[str]:
        """What is wrong with the task's outcomes: none, the first not the last attempt's
        completion, or later ones that differ from the first."""
        if not self.outcomes:
            return ["no outcome"]
        first, out = self.outcomes[0], []
        if (first.kind, first.attempt) != (m.OutcomeKind.COMPLETED, self.attempts):
            out.append(
                f"outcome {first.kind.value} by attempt {first.attempt}, last is {self.attempts}"
            )
        if any(o != first for o in self.outcomes[1:]):
            out.append(f"{len(self.outcomes)} outcomes that differ")
        return out

    def problems(self) -> list[str]:
        out = self.outcome_problems()
        if len(self.completed_attempts) != 1:
            out.append(f"completed {len(self.completed_attempts)} times")
        elif self.completed_attempts[0] != self.attempts:
            out.append(
                f"completed by attempt {self.completed_attempts[0]}, last is {self.attempts}"
            )
        if self.duplicates:
            out.append(f"steps committed twice: {self.duplicates}")
        if self.missing:
            out.append(f"steps never committed: {self.missing}")
        return out


@dataclasses.dataclass
class LedgerReport:
    """The verdict for every task of a run."""

    tasks: dict[str, TaskLedger]

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tasks.values())

    @property
    def steps_redone(self) -> int:
        return sum(len(t.redone) for t in self.tasks.values())

    def problems(self) -> list[str]:
        return [f"{tid}: {p}" for tid, t in sorted(self.tasks.items()) for p in t.problems()]


def judge(
    task_steps: dict[str, int],
    results: Iterable[StepResult],
    redispatches: Iterable[m.Redispatch],
    completions: Iterable[m.TaskEvent],
    outcomes: Iterable[m.TaskOutcome],
) -> LedgerReport:
    """Pure: apply the attempt-chain rule to what was read back (see the module docstring)."""
    limits: dict[str, dict[int, int]] = defaultdict(dict)  # task -> attempt a -> limit[a]
    for r in redispatches:
        if r.attempt < 2:
            continue  # new work: the chain starts at attempt 1 anyway
        step = r.checkpoint.step if r.checkpoint is not None else -1
        # Identical copies of one (task, attempt) may exist; they name the same checkpoint.
        limits[r.task_id][r.attempt - 1] = step
    ledgers = {tid: TaskLedger(task_id=tid, steps=n) for tid, n in task_steps.items()}
    for tid, lim in limits.items():
        if tid in ledgers:
            ledgers[tid].attempts = max(lim) + 1
    for ev in completions:
        if ev.kind is m.EventKind.COMPLETED and ev.task_id in ledgers:
            assert ev.attempt is not None
            ledgers[ev.task_id].completed_attempts.append(ev.attempt)
    for outcome in outcomes:
        if outcome.task_id in ledgers:
            ledgers[outcome.task_id].outcomes.append(outcome)
    for res in results:
        ledger = ledgers.get(res.task_id)
        if ledger is None:
            continue
        lim = limits.get(res.task_id, {})
        low = lim.get(res.attempt - 1, -1)
        high = lim.get(res.attempt)  # None: the last attempt, unbounded
        if low < res.step and (high is None or res.step <= high):
            ledger.committed.setdefault(res.step, []).append(res)
        else:
            ledger.redone.append(res)
    return LedgerReport(tasks=ledgers)


def build_report(
    kafka: KafkaConfig | str,
    results_topic: str,
    topics: Topics,
    task_steps: dict[str, int],
) -> LedgerReport:
    """Read the four topics back to their high watermark and judge them."""
    results = [StepResult.decode(r.value) for r in read_topic(kafka, results_topic) if r.value]
    redispatches = [
        m.Redispatch.decode(r.value) for r in read_topic(kafka, topics.priority) if r.value
    ]
    events = []
    for rec in read_topic(kafka, topics.task_events):
        try:
            events.append(m.TaskEvent.decode(rec.value or b""))
        except CodecError:
            continue  # the monitor dead-letters bad records; they are no task's completion
    outcomes = [
        m.TaskOutcome.decode(r.value) for r in read_topic(kafka, topics.outcomes) if r.value
    ]
    return judge(task_steps, results, redispatches, events, outcomes)


def summarise(report: LedgerReport) -> dict[str, Any]:
    """Figures for a run summary."""
    return {
        "tasks": len(report.tasks),
        "completed_exactly_once": sum(1 for t in report.tasks.values() if t.ok),
        "steps_committed": sum(len(t.committed) for t in report.tasks.values()),
        "steps_redone": report.steps_redone,
        "problems": report.problems(),
    }
