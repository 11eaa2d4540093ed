"""The soak's output: a table for people, a JSON result file for tools, and the exit code."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import orjson

from agent_failover.dev.soak.evidence import Evidence
from agent_failover.dev.soak.verdict import Verdict

#: Exit codes: no violation; violations; the run could not judge (setup failed, tasks unfinished
#: while every slot was busy, or a fault could not be injected).
OK, VIOLATIONS, INCONCLUSIVE = 0, 1, 2

#: How many instances of each violation the table lists (the JSON file has them all).
SHOWN = 5


@dataclasses.dataclass
class SoakResult:
    """A finished run: what it left, what the verdict is, where its logs are."""

    evidence: Evidence
    verdict: Verdict
    log_dir: Path
    seconds: float

    @property
    def exit_code(self) -> int:
        """0 only if there is no violation and the run judged every task and fault."""
        if self.verdict.violations:
            return VIOLATIONS
        if self.verdict.unfinished or self.verdict.faults_skipped:
            return INCONCLUSIVE
        return OK

    def to_dict(self) -> dict[str, Any]:
        """The result file's content."""
        schedule = self.evidence.schedule
        return {
            "seed": schedule.seed,
            "profile": schedule.profile.name,
            "seconds": round(self.seconds, 1),
            "exit_code": self.exit_code,
            "log_dir": str(self.log_dir),
            "verdict": self.verdict.to_dict(),
            "run": self.evidence.summary(),
            "schedule": schedule.to_dict(),
        }


def write_json(result: SoakResult, path: Path) -> None:
    """Write the result file (aside, then renamed: a reader never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2))
    os.replace(partial, path)


def _count(kinds: dict[str, int]) -> str:
    return ", ".join(f"{k} {n}" for k, n in kinds.items()) or "none"


def render(result: SoakResult) -> str:
    """The table (plain text)."""
    v = result.verdict
    ev = result.evidence
    rows: list[tuple[str, str]] = [
        ("faults injected", f"{sum(v.faults_injected.values())}: {_count(v.faults_injected)}"),
        ("faults skipped", str(len(v.faults_skipped))),
        ("fences (failovers)", str(v.fences)),
        ("tasks submitted", str(v.tasks_submitted)),
        (
            "tasks completed",
            f"{v.tasks_completed} ({v.completed_exactly_once} exactly once; "
            f"{v.superseded_completions} completions of superseded attempts not counted)",
        ),
        ("steps executed", f"{v.steps_executed} ({v.steps_committed} committed)"),
        (
            "steps executed twice",
            f"{sum(v.executed_twice.values())}: after a crash {v.executed_twice['crash']} "
            f"({v.redone_past_checkpoint} past a durable checkpoint), graceful handoff "
            f"{v.executed_twice['handoff']}, by a fenced epoch after its fence "
            f"{v.executed_twice['after_fence']}, unexplained {v.executed_twice['unexplained']}",
        ),
        ("longest wait for a first claim", f"{v.longest_wait[0]:.1f} s ({v.longest_wait[1]})"),
        ("free slots at the end", str(v.free_slots)),
        ("unfinished (no free slot)", str(len(v.unfinished))),
    ]
    if v.unexpected_exits:
        rows.append(("processes exited by themselves", str(len(v.unexpected_exits))))
    if v.torn_lines:
        rows.append(("ledger lines cut by a kill", str(v.torn_lines)))
    lists = v.violation_lists()
    for name, items in lists.items():
        rows.append((_LABELS[name], str(len(items))))
    rows.append(("violations", str(v.violations)))
    width = max(len(label) for label, _ in rows)
    head = (
        f"soak seed {ev.schedule.seed} ({ev.schedule.profile.name}): "
        f"{result.seconds:.0f} s, load {ev.load[0]:.1f} -> {ev.load[1]:.1f} (1-min average, "
        f"{os.cpu_count()} cores); logs {result.log_dir}"
    )
    lines = [head, *(f"  {label:<{width}}  {value}" for label, value in rows)]
    for name, items in lists.items():
        for item in items[:SHOWN]:
            lines.append(f"  {name.upper()}: {item}")
        if len(items) > SHOWN:
            lines.append(f"  {name.upper()}: ... {len(items) - SHOWN} more in the result file")
    for skipped in v.faults_skipped:
        lines.append(f"  SKIPPED fault {skipped}")
    return "\n".join(lines)


_LABELS = {
    "lost": "lost tasks",
    "stuck": "stuck tasks",
    "committed_twice": "committed twice",
    "after_fence": "steps by a fenced epoch after its fence",
    "false_failovers": "false failovers",
    "unexplained": "steps run twice, no failure to explain",
    "wrong_state": "steps resumed from a wrong state",
    "wrong_outcome": "completed tasks with a wrong outcome",
}
