"""The soak's verdict: figures and violations, computed from the evidence alone (pure).

Which writes count is the protocol's rule (docs/protocol.md, "Which writes count"): a task's
attempts form a chain, attempt ``a`` owning the steps up to the checkpoint named by the first
re-dispatch of attempt ``a + 1``; the last attempt owns the rest and its completion is the one
that counts. The chain itself is :func:`agent_failover.dev.ledger.judge`, fed with the soak's
ledger lines instead of a results topic.

A step executed more than once is put down to the first cause that applies to the extra run:

* ``after_fence``: run by an epoch after the monitor fenced it (the fence's ``issued_at``) - a
  violation, whatever else happened;
* ``handoff``: its attempt was released (a graceful stop) - counted;
* ``crash``: its process was killed or frozen, or its epoch was fenced - expected, up to the
  checkpoint policy's bound (``redone_past_checkpoint`` counts the steps redone although a
  durable checkpoint of that attempt covered them);
* ``unexplained``: none of these - a violation (a task run twice while nothing failed).

Violations: tasks lost, tasks stuck, steps or tasks committed twice, steps by a fenced epoch
after its fence, false failovers (an epoch fenced while its process was neither killed, stopped
nor frozen), steps run twice with no failure to explain them, and committed steps whose input was
not the previous committed step's output (a resume from the wrong state), and completed tasks
whose outcome is missing, not the last attempt's completion, or contradicted by a later one.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from agent_failover import models as m
from agent_failover.dev.ledger import StepResult, judge
from agent_failover.dev.soak.evidence import Evidence
from agent_failover.dev.soak.fleet import ProcessRecord
from agent_failover.dev.soak.steplog import StepLine
from agent_failover.dev.worker import step_digest

CAUSES = ("crash", "handoff", "after_fence", "unexplained")

#: Signals after which a fence of the process's epoch is no false failover.
_EXPLAINING = {"SIGKILL", "SIGSTOP", "SIGTERM"}

Execution = tuple[str, int, str, int]  # task, attempt, agent id, epoch


@dataclasses.dataclass
class Verdict:
    """The figures of one run; :attr:`violations` must be 0."""

    faults_injected: dict[str, int]
    faults_skipped: list[str]
    tasks_submitted: int
    tasks_completed: int
    completed_exactly_once: int
    superseded_completions: int
    steps_executed: int
    steps_committed: int
    executed_twice: dict[str, int]
    redone_past_checkpoint: int
    fences: int
    #: The longest time from a task's submission to its first claim, and that task.
    longest_wait: tuple[float, str]
    free_slots: int
    torn_lines: int
    unexpected_exits: list[str]
    lost: list[str]
    stuck: list[str]
    committed_twice: list[str]
    after_fence: list[str]
    false_failovers: list[str]
    unexplained: list[str]
    wrong_state: list[str]
    wrong_outcome: list[str]
    #: Tasks not done at the end while no agent had a free slot: the run proves nothing of them.
    unfinished: list[str]

    @property
    def violations(self) -> int:
        """Lost + stuck + committed twice + after a fence + false failovers + unexplained runs +
        wrong states + wrong outcomes."""
        return sum(len(v) for v in self.violation_lists().values())

    def violation_lists(self) -> dict[str, list[str]]:
        """Each kind of violation with its instances."""
        return {
            "lost": self.lost,
            "stuck": self.stuck,
            "committed_twice": self.committed_twice,
            "after_fence": self.after_fence,
            "false_failovers": self.false_failovers,
            "unexplained": self.unexplained,
            "wrong_state": self.wrong_state,
            "wrong_outcome": self.wrong_outcome,
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy, with the violation count."""
        return {**dataclasses.asdict(self), "violations": self.violations}


class _Story:
    """Indexes over the evidence that the checks below share."""

    def __init__(self, ev: Evidence) -> None:
        self.ev = ev
        self.task_steps = ev.schedule.task_steps()
        self.fence: dict[tuple[str, int], m.Control] = {}
        for ctl in ev.control:
            if ctl.kind is m.ControlKind.FENCE and ctl.issued_at <= ev.cut_at:
                self.fence.setdefault((ctl.agent_id, ctl.epoch), ctl)  # the first one counts
        self.redispatch: dict[tuple[str, int], m.Redispatch] = {}
        for rd in sorted(ev.redispatches, key=lambda r: r.dispatched_at):
            self.redispatch.setdefault((rd.task_id, rd.attempt), rd)
        self.last_attempt: dict[str, int] = {t: 1 for t in self.task_steps}
        for task_id, attempt in self.redispatch:
            if task_id in self.last_attempt:
                self.last_attempt[task_id] = max(attempt, self.last_attempt[task_id])
        self.released = {
            (e.task_id, e.attempt, e.agent_id, e.epoch)
            for e in ev.events
            if e.kind is m.EventKind.RELEASED and e.task_id and e.attempt
        }
        self.checkpointed: dict[Execution, int] = {}
        for c in ev.checkpoints:
            key = (c.task_id, c.attempt, c.agent_id, c.epoch)
            self.checkpointed[key] = max(c.step, self.checkpointed.get(key, -1))
        self.owner = _owners(ev)

    def fenced_before(self, agent_id: str, epoch: int, at: float) -> bool:
        fence = self.fence.get((agent_id, epoch))
        return fence is not None and fence.issued_at < at


def _owners(ev: Evidence) -> dict[int, ProcessRecord]:
    """Epoch -> the process that announced it: the one of that agent id running at the time.

    Processes of one agent id never overlap (a slot is refilled only after its process exited),
    so the time of ``agent_started`` names exactly one.
    """
    owners: dict[int, ProcessRecord] = {}
    agents = [p for p in ev.processes if p.role == "agent"]
    for e in ev.events:
        if e.kind is not m.EventKind.AGENT_STARTED:
            continue
        for proc in agents:
            if proc.agent_id == e.agent_id and proc.alive_at(e.at):
                owners[e.epoch] = proc
    return owners


def judge_soak(ev: Evidence) -> Verdict:
    """The verdict of one run (see the module docstring)."""
    story = _Story(ev)
    results = [
        StepResult(s.task_id, s.attempt, s.step, s.agent_id, s.epoch, s.digest, s.at)
        for s in ev.steps.lines
    ]
    chain = judge(story.task_steps, results, story.redispatch.values(), [], ev.outcomes)
    counting, superseded = _completions(story)
    twice = [f"{t}: completed {n} times" for t, n in sorted(counting.items()) if n > 1]
    missing = []
    for task_id, ledger in sorted(chain.tasks.items()):
        for step in ledger.duplicates:
            twice.append(f"{task_id}: step {step} committed {len(ledger.committed[step])} times")
        if counting.get(task_id) and ledger.missing:
            missing.append(f"{task_id}: completed, steps never committed {ledger.missing}")
    causes, past_checkpoint, unexplained = _redone(story, chain.tasks)
    lost, stuck, unfinished, free = _unfinished(story, set(counting))
    exactly_once = sum(
        1
        for t, ledger in chain.tasks.items()
        if counting.get(t) == 1 and not ledger.duplicates and not ledger.missing
    )
    return Verdict(
        faults_injected=dict(Counter(f.kind for f in ev.faults if f.fired_at is not None)),
        faults_skipped=[f"{f.index} {f.kind}: {f.skipped}" for f in ev.faults if f.skipped],
        tasks_submitted=len(story.task_steps),
        tasks_completed=sum(1 for t in story.task_steps if counting.get(t)),
        completed_exactly_once=exactly_once,
        superseded_completions=superseded,
        steps_executed=len(ev.steps.lines),
        steps_committed=sum(len(t.committed) for t in chain.tasks.values()),
        executed_twice=causes,
        redone_past_checkpoint=past_checkpoint,
        fences=len(story.fence),
        longest_wait=_longest_wait(ev),
        free_slots=free,
        torn_lines=ev.steps.torn,
        unexpected_exits=_unexpected_exits(story),
        lost=missing + lost,
        stuck=stuck,
        committed_twice=twice,
        after_fence=_after_fence(story),
        false_failovers=_false_failovers(story),
        unexplained=unexplained,
        wrong_state=_wrong_state(story, chain.tasks),
        wrong_outcome=[
            f"{t}: {'; '.join(ledger.outcome_problems())}"
            for t, ledger in sorted(chain.tasks.items())
            if counting.get(t) and ledger.outcome_problems()
        ],
        unfinished=unfinished,
    )


def _completions(story: _Story) -> tuple[dict[str, int], int]:
    """Per task, how many completions count (the last attempt, by its owner, not fenced), and
    how many completions did not count."""
    done: dict[str, set[tuple[str, int]]] = {}
    superseded = 0
    for e in story.ev.events:
        if e.kind is not m.EventKind.COMPLETED or e.task_id not in story.task_steps:
            continue
        last = story.last_attempt[e.task_id]
        rd = story.redispatch.get((e.task_id, last))
        owns = rd is None or (rd.target_agent_id, rd.target_epoch) == (e.agent_id, e.epoch)
        if e.attempt == last and owns and not story.fenced_before(e.agent_id, e.epoch, e.at):
            done.setdefault(e.task_id, set()).add((e.agent_id, e.epoch))
        else:
            superseded += 1
    return {t: len(by) for t, by in done.items()}, superseded


def _after_fence(story: _Story) -> list[str]:
    out = []
    for s in story.ev.steps.lines:
        fence = story.fence.get((s.agent_id, s.epoch))
        if fence is not None and s.at > fence.issued_at:
            out.append(
                f"{s.task_id} step {s.step} by {s.agent_id} epoch {s.epoch} (attempt {s.attempt}) "
                f"{s.at - fence.issued_at:.2f} s after its fence"
            )
    return out


def _redone(story: _Story, tasks: dict[str, Any]) -> tuple[dict[str, int], int, list[str]]:
    """Steps executed but not committed, by cause; those redone past a durable checkpoint; and
    the unexplained ones."""
    causes = dict.fromkeys(CAUSES, 0)
    past_checkpoint = 0
    unexplained = []
    for ledger in tasks.values():
        for r in ledger.redone:
            line = StepLine(r.task_id, r.attempt, r.agent_id, r.epoch, r.step, r.at, r.output)
            cause = _cause(story, line)
            causes[cause] += 1
            key = (r.task_id, r.attempt, r.agent_id, r.epoch)
            if cause == "crash" and r.step <= story.checkpointed.get(key, -1):
                past_checkpoint += 1
            if cause == "unexplained":
                unexplained.append(
                    f"{r.task_id} step {r.step} run again; attempt {r.attempt} by {r.agent_id} "
                    f"epoch {r.epoch} was neither released, killed, frozen nor fenced"
                )
    return causes, past_checkpoint, unexplained


def _cause(story: _Story, s: StepLine) -> str:
    if story.fenced_before(s.agent_id, s.epoch, s.at):
        return "after_fence"
    if (s.task_id, s.attempt, s.agent_id, s.epoch) in story.released:
        return "handoff"
    proc = story.owner.get(s.epoch)
    end = story.ev.cut_at
    if (s.agent_id, s.epoch) in story.fence or (
        proc is not None and proc.signalled({"SIGKILL", "SIGSTOP"}, end)
    ):
        return "crash"
    if proc is not None and proc.signalled({"SIGTERM"}, end):
        return "handoff"
    return "unexplained"


def _false_failovers(story: _Story) -> list[str]:
    out = []
    for (agent_id, epoch), fence in sorted(story.fence.items(), key=lambda x: x[1].issued_at):
        proc = story.owner.get(epoch)
        if proc is None:
            out.append(f"{agent_id} epoch {epoch} fenced ({fence.reason}): no process had it")
            continue
        if proc.signalled(_EXPLAINING, fence.issued_at) is not None:
            continue
        if proc.exited_at is not None and proc.exited_at <= fence.issued_at:
            continue  # it died on its own: a real failure
        out.append(
            f"{agent_id} epoch {epoch} (pid {proc.pid}) fenced ({fence.reason}) "
            f"{fence.issued_at - story.ev.started_at:.1f} s into the run while it ran untouched"
        )
    return out


def _wrong_state(story: _Story, tasks: dict[str, Any]) -> list[str]:
    """Committed steps whose output does not follow from the previous committed step's."""
    out = []
    for task_id, ledger in sorted(tasks.items()):
        previous: str | None = ""
        for step in range(story.task_steps[task_id]):
            runs = ledger.committed.get(step, [])
            if len(runs) != 1:
                previous = None  # missing or duplicated: reported as such, nothing to chain
                continue
            digest = runs[0].output
            if previous is not None and digest != step_digest(task_id, step, previous):
                out.append(f"{task_id} step {step} (attempt {runs[0].attempt}) from a wrong state")
            previous = digest
    return out


def _unfinished(story: _Story, completed: set[str]) -> tuple[list[str], list[str], list[str], int]:
    """Tasks not completed at the end, and the free slots then.

    Lost: started once, and no live epoch holds it. Stuck: the rest, while agents had free
    slots. Unfinished (not judged): the rest, while every slot was busy.
    """
    ev = story.ev
    live = {
        epoch
        for epoch, proc in story.owner.items()
        if proc.alive_at(ev.cut_at) and not proc.frozen_at(ev.cut_at)
    }
    held: set[str] = set()
    free = 0
    for beat in ev.heartbeats:
        if beat.epoch in live and (beat.agent_id, beat.epoch) not in story.fence:
            held.update(beat.in_flight)
            free += max(0, beat.capacity - len(beat.in_flight))
    started = {e.task_id for e in ev.events if e.kind is m.EventKind.CLAIMED and e.task_id}
    last_step: dict[str, float] = {}
    for s in ev.steps.lines:
        started.add(s.task_id)
        last_step[s.task_id] = max(s.at, last_step.get(s.task_id, 0.0))
    lost, stuck, unfinished = [], [], []
    for task_id in sorted(set(story.task_steps) - completed):
        if task_id in started and task_id not in held:
            lost.append(f"{task_id}: started, not completed, held by no live agent")
        elif free == 0:
            unfinished.append(task_id)
        elif task_id in last_step:
            idle = ev.cut_at - last_step[task_id]
            stuck.append(
                f"{task_id}: not completed, held by a live agent, last step {idle:.0f} s before "
                f"the end; {free} free slot(s)"
            )
        else:
            where = "held by a live agent" if task_id in held else "waiting"
            stuck.append(f"{task_id}: never started ({where}); {free} free slot(s) at the end")
    return lost, stuck, unfinished, free


def _longest_wait(ev: Evidence) -> tuple[float, str]:
    """The longest time from a task's submission to its first claim (or to the end, unclaimed)."""
    first: dict[str, float] = {}
    submitted: dict[str, float] = {}
    for e in ev.events:
        if e.kind is m.EventKind.CLAIMED and e.task is not None and e.task_id is not None:
            first[e.task_id] = min(e.at, first.get(e.task_id, e.at))
            if e.task.submitted_at is not None:
                submitted[e.task_id] = e.task.submitted_at
    waits = [(first[t] - submitted[t], t) for t in submitted]
    return max(waits, default=(0.0, ""))


def _unexpected_exits(story: _Story) -> list[str]:
    """Processes that exited before the end with no signal from the soak (a fenced agent's exit
    is expected)."""
    fenced_epochs = {epoch for _, epoch in story.fence}
    out = []
    for proc in story.ev.processes:
        if proc.exited_at is None or proc.exited_at > story.ev.cut_at or proc.signals:
            continue
        if proc.role == "agent" and any(story.owner.get(e) is proc for e in fenced_epochs):
            continue
        out.append(f"{proc.name} (pid {proc.pid}) exited with {proc.returncode}")
    return out
