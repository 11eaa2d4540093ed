"""The soak's verdict on made-up runs: each violation and each cause of a step run twice."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from agent_failover import models as m
from agent_failover.dev.soak.evidence import Evidence
from agent_failover.dev.soak.fleet import ProcessRecord, SignalSent
from agent_failover.dev.soak.report import INCONCLUSIVE, OK, VIOLATIONS, SoakResult, render
from agent_failover.dev.soak.schedule import PROFILES, Schedule, TaskSpec, Wave
from agent_failover.dev.soak.steplog import StepLine, StepLogs
from agent_failover.dev.soak.verdict import Verdict, judge_soak
from agent_failover.dev.worker import step_digest


def task(task_id: str) -> m.Task:
    return m.Task(task_id=task_id, task_type="soak", payload={"steps": 4})


@dataclasses.dataclass
class Run:
    """A made-up run: processes, ledger lines and records, built step by step."""

    tasks: dict[str, int]
    processes: list[ProcessRecord] = dataclasses.field(default_factory=list)
    lines: list[StepLine] = dataclasses.field(default_factory=list)
    events: list[m.TaskEvent] = dataclasses.field(default_factory=list)
    control: list[m.Control] = dataclasses.field(default_factory=list)
    redispatches: list[m.Redispatch] = dataclasses.field(default_factory=list)
    checkpoints: list[m.Checkpoint] = dataclasses.field(default_factory=list)
    heartbeats: list[m.Heartbeat] = dataclasses.field(default_factory=list)
    outcomes: list[m.TaskOutcome] = dataclasses.field(default_factory=list)
    cut_at: float = 100.0

    def agent(self, agent_id: str, epoch: int, at: float, capacity: int = 2) -> ProcessRecord:
        """A process that started at ``at``, announced ``epoch`` and heartbeats till the end."""
        proc = ProcessRecord(agent_id, "agent", 0, epoch, epoch, at - 0.5, agent_id, capacity)
        self.processes.append(proc)
        self.events.append(
            m.TaskEvent(kind=m.EventKind.AGENT_STARTED, agent_id=agent_id, epoch=epoch, at=at)
        )
        return proc

    def signal(self, proc: ProcessRecord, sig: str, at: float) -> None:
        proc.signals.append(SignalSent(sig, at, 0))
        if sig == "SIGKILL":
            proc.exited_at = at + 0.1

    def run(
        self,
        task_id: str,
        attempt: int,
        proc: ProcessRecord,
        steps: range,
        at: float,
        *,
        checkpoint: bool = True,
        complete: bool = False,
        outcome: bool = True,
    ) -> None:
        """The attempt claims the task at ``at`` and runs ``steps``, one a second; ``complete``:
        it reports completion, and (``outcome``) the monitor publishes its outcome."""
        agent, epoch = proc.agent_id or "", proc.pid
        self.events.append(
            m.TaskEvent(
                kind=m.EventKind.CLAIMED,
                agent_id=agent,
                epoch=epoch,
                at=at,
                task_id=task_id,
                attempt=attempt,
                task=task(task_id),
            )
        )
        for i, step in enumerate(steps):
            when = at + 1 + i
            digest = self.digest(task_id, step)
            self.lines.append(StepLine(task_id, attempt, agent, epoch, step, when, digest))
            if checkpoint:
                self.checkpoints.append(
                    m.Checkpoint(task_id, attempt, agent, epoch, step, {"digest": digest}, when)
                )
        if complete:
            self.events.append(
                m.TaskEvent(
                    kind=m.EventKind.COMPLETED,
                    agent_id=agent,
                    epoch=epoch,
                    at=at + len(steps) + 1,
                    task_id=task_id,
                    attempt=attempt,
                )
            )
        if complete and outcome:
            # What the monitor publishes for an accepted completion.
            self.outcomes.append(
                m.TaskOutcome(
                    task_id=task_id,
                    kind=m.OutcomeKind.COMPLETED,
                    attempt=attempt,
                    agent_id=agent,
                    epoch=epoch,
                    finished_at=at + len(steps) + 1,
                )
            )

    def digest(self, task_id: str, step: int) -> str:
        previous = ""
        for s in range(step + 1):
            previous = step_digest(task_id, s, previous)
        return previous

    def fence(self, proc: ProcessRecord, at: float) -> None:
        self.control.append(
            m.Control(
                kind=m.ControlKind.FENCE,
                agent_id=proc.agent_id or "",
                epoch=proc.pid,
                decision_id=f"fence-{proc.pid}",
                issued_at=at,
                reason=m.DispatchReason.HEARTBEAT_TIMEOUT,
            )
        )

    def move(
        self,
        task_id: str,
        attempt: int,
        old: ProcessRecord,
        new: ProcessRecord,
        step: int,
        at: float,
    ) -> None:
        ref = (
            m.CheckpointRef(
                partition=0,
                offset=0,
                step=step,
                task_id=task_id,
                attempt=attempt - 1,
                epoch=old.pid,
            )
            if step >= 0
            else None
        )
        self.redispatches.append(
            m.Redispatch(
                task=task(task_id),
                attempt=attempt,
                target_agent_id=new.agent_id or "",
                target_epoch=new.pid,
                reason=m.DispatchReason.HEARTBEAT_TIMEOUT,
                from_agent_id=old.agent_id or "",
                from_epoch=old.pid,
                decision_id=f"move-{task_id}-{attempt}",
                dispatched_at=at,
                checkpoint=ref,
            )
        )

    def release(self, proc: ProcessRecord, task_id: str, attempt: int, at: float) -> None:
        self.events.append(
            m.TaskEvent(
                kind=m.EventKind.RELEASED,
                agent_id=proc.agent_id or "",
                epoch=proc.pid,
                at=at,
                task_id=task_id,
                attempt=attempt,
                task=task(task_id),
            )
        )

    def beat(self, proc: ProcessRecord, in_flight: tuple[str, ...] = ()) -> None:
        self.heartbeats.append(
            m.Heartbeat(
                agent_id=proc.agent_id or "",
                epoch=proc.pid,
                seq=1,
                sent_at=self.cut_at - 0.2,
                interval_s=0.5,
                capacity=proc.capacity or 0,
                in_flight=in_flight,
            )
        )

    def verdict(self) -> Verdict:
        return judge_soak(self.evidence())

    def evidence(self) -> Evidence:
        schedule = Schedule(
            seed=0,
            profile=PROFILES["quick"],
            capacities=(2,),
            waves=(Wave(0.0, tuple(TaskSpec(t, n) for t, n in self.tasks.items())),),
            faults=(),
        )
        return Evidence(
            schedule=schedule,
            started_at=0.0,
            cut_at=self.cut_at,
            drained=True,
            processes=self.processes,
            faults=[],
            steps=StepLogs(tuple(self.lines), files=1, torn=0),
            events=self.events,
            control=self.control,
            redispatches=self.redispatches,
            checkpoints=self.checkpoints,
            heartbeats=self.heartbeats,
            outcomes=self.outcomes,
        )


def crashed_and_resumed(*, checkpoint_last: bool) -> Run:
    """t1: attempt 1 on a runs steps 0-2 and is SIGKILLed; attempt 2 on b resumes after step 1.

    Step 2's checkpoint was written or not (``checkpoint_last``); either way the move names
    step 1, so step 2 runs again.
    """
    run = Run({"t1": 4})
    a, b = run.agent("a", 1, 1.0), run.agent("b", 2, 1.0)
    run.run("t1", 1, a, range(2), 2.0)
    run.run("t1", 1, a, range(2, 3), 4.0, checkpoint=checkpoint_last)
    run.signal(a, "SIGKILL", 7.5)
    run.fence(a, 10.0)
    run.move("t1", 2, a, b, 1, 10.1)
    run.run("t1", 2, b, range(2, 4), 11.0, complete=True)
    run.beat(b)
    return run


def test_a_clean_run_has_no_violation_and_every_task_exactly_once() -> None:
    run = Run({"t1": 4, "t2": 3})
    a = run.agent("a", 1, 1.0)
    run.run("t1", 1, a, range(4), 2.0, complete=True)
    run.run("t2", 1, a, range(3), 2.0, complete=True)
    run.beat(a)
    v = run.verdict()
    assert v.violations == 0, v.violation_lists()
    assert (v.tasks_submitted, v.tasks_completed, v.completed_exactly_once) == (2, 2, 2)
    assert (v.steps_executed, v.steps_committed, v.free_slots) == (7, 7, 2)
    assert sum(v.executed_twice.values()) == 0


def test_a_step_redone_after_a_crash_is_expected() -> None:
    v = crashed_and_resumed(checkpoint_last=False).verdict()
    assert v.violations == 0, v.violation_lists()
    assert v.executed_twice["crash"] == 1
    assert v.redone_past_checkpoint == 0
    assert (v.fences, v.completed_exactly_once) == (1, 1)


def test_a_step_redone_although_checkpointed_is_counted_past_the_checkpoint() -> None:
    v = crashed_and_resumed(checkpoint_last=True).verdict()
    assert v.violations == 0
    assert (v.executed_twice["crash"], v.redone_past_checkpoint) == (1, 1)


def test_a_zombie_step_after_its_fence_is_a_violation() -> None:
    run = Run({"t1": 4})
    a, b = run.agent("a", 1, 1.0), run.agent("b", 2, 1.0)
    run.run("t1", 1, a, range(2), 2.0)
    run.signal(a, "SIGSTOP", 4.5)
    run.fence(a, 8.0)
    run.move("t1", 2, a, b, 1, 8.1)
    run.signal(a, "SIGCONT", 9.0)
    run.run("t1", 1, a, range(2, 3), 8.5)  # its step 2 lands at 9.5, after the fence
    run.run("t1", 2, b, range(2, 4), 9.0, complete=True)
    run.beat(b)
    v = run.verdict()
    assert len(v.after_fence) == 1
    assert "t1 step 2 by a" in v.after_fence[0]
    assert v.executed_twice["after_fence"] == 1
    assert v.false_failovers == []
    assert v.violations == 1


def test_a_fence_of_an_untouched_agent_is_a_false_failover() -> None:
    run = Run({"t1": 2})
    a, b = run.agent("a", 1, 1.0), run.agent("b", 2, 1.0)
    run.run("t1", 1, a, range(2), 2.0, complete=True)
    run.fence(b, 6.0)
    run.beat(a)
    v = run.verdict()
    assert len(v.false_failovers) == 1
    assert v.false_failovers[0].startswith("b epoch 2")
    assert v.violations == 1
    # The same fence after a SIGTERM, or after the process died by itself, is no false failover.
    b.signals.append(SignalSent("SIGTERM", 5.0, 0))
    assert run.verdict().false_failovers == []
    b.signals.clear()
    b.exited_at = 5.0
    assert run.verdict().false_failovers == []


def test_a_step_redone_after_a_graceful_handoff_is_counted() -> None:
    run = Run({"t1": 4})
    a, b = run.agent("a", 1, 1.0), run.agent("b", 2, 1.0)
    run.run("t1", 1, a, range(3), 2.0)
    run.signal(a, "SIGTERM", 5.2)
    run.release(a, "t1", 1, 5.3)
    run.move("t1", 2, a, b, 1, 5.4)
    run.run("t1", 2, b, range(2, 4), 6.0, complete=True)
    run.beat(b)
    v = run.verdict()
    assert v.violations == 0, v.violation_lists()
    assert v.executed_twice["handoff"] == 1


def test_a_task_run_twice_while_nothing_failed_is_a_violation() -> None:
    run = Run({"t1": 4})
    a, b = run.agent("a", 1, 1.0), run.agent("b", 2, 1.0)
    run.run("t1", 1, a, range(4), 2.0)  # never told: it goes on to the end
    run.move("t1", 2, a, b, 1, 4.0)  # moved although a was healthy
    run.run("t1", 2, b, range(2, 4), 4.5, complete=True)
    run.beat(a)
    run.beat(b)
    v = run.verdict()
    assert len(v.unexplained) == 2  # a's steps 2 and 3, run again by b
    assert v.executed_twice["unexplained"] == 2


def test_two_epochs_running_one_attempt_commit_twice() -> None:
    run = Run({"t1": 2})
    a, b = run.agent("a", 1, 1.0), run.agent("b", 2, 1.0)
    run.run("t1", 1, a, range(2), 2.0, complete=True)
    run.run("t1", 1, b, range(2), 2.0, complete=True)
    run.beat(a)
    run.beat(b)
    v = run.verdict()
    assert "t1: completed 2 times" in v.committed_twice
    assert "t1: step 0 committed 2 times" in v.committed_twice
    assert v.completed_exactly_once == 0


def test_a_completion_of_a_superseded_attempt_does_not_count() -> None:
    run = crashed_and_resumed(checkpoint_last=False)
    a = run.processes[0]
    run.events.append(
        m.TaskEvent(
            kind=m.EventKind.COMPLETED, agent_id="a", epoch=a.pid, at=7.0, task_id="t1", attempt=1
        )
    )
    v = run.verdict()
    assert (v.completed_exactly_once, v.superseded_completions) == (1, 1)
    assert v.violations == 0


def test_a_completed_task_without_an_outcome_is_a_violation() -> None:
    run = Run({"t1": 2})
    a = run.agent("a", 1, 1.0)
    run.run("t1", 1, a, range(2), 2.0, complete=True, outcome=False)
    run.beat(a)
    v = run.verdict()
    assert v.wrong_outcome == ["t1: no outcome"]
    assert v.violations == 1


def test_an_outcome_naming_a_superseded_attempt_is_a_violation() -> None:
    run = crashed_and_resumed(checkpoint_last=False)
    a = run.processes[0]
    # The zombie's completion reached the outcomes before the accepted one.
    run.outcomes.insert(
        0,
        m.TaskOutcome(
            task_id="t1",
            kind=m.OutcomeKind.COMPLETED,
            attempt=1,
            agent_id="a",
            epoch=a.pid,
            finished_at=7.0,
        ),
    )
    v = run.verdict()
    assert v.wrong_outcome == [
        "t1: outcome completed by attempt 1, last is 2; 2 outcomes that differ"
    ]


def test_unfinished_tasks_are_lost_stuck_or_unjudged() -> None:
    run = Run({"t1": 4, "t2": 4, "t3": 4})
    a, b = run.agent("a", 1, 1.0), run.agent("b", 2, 1.0)
    run.run("t1", 1, a, range(2), 2.0)  # a is killed; nobody takes t1 over
    run.signal(a, "SIGKILL", 5.0)
    run.fence(a, 8.0)
    run.run("t2", 1, b, range(1), 2.0)  # held by b, never finished
    run.beat(b, in_flight=("t2",))  # one free slot left
    v = run.verdict()
    assert v.lost == ["t1: started, not completed, held by no live agent"]
    assert v.stuck == [
        "t2: not completed, held by a live agent, last step 97 s before the end; 1 free slot(s)",
        "t3: never started (waiting); 1 free slot(s) at the end",
    ]
    assert (v.unfinished, v.free_slots) == ([], 1)
    # With every slot busy at the end, what is not done yet is not judged.
    run.heartbeats = []
    run.beat(b, in_flight=("t2", "t9"))
    v = run.verdict()
    assert (v.unfinished, v.stuck, v.free_slots) == (["t2", "t3"], [], 0)
    assert len(v.lost) == 1


def test_the_longest_wait_for_a_first_claim_is_measured() -> None:
    run = Run({"t1": 1, "t2": 1})
    a = run.agent("a", 1, 1.0)
    for task_id, submitted, claimed in (("t1", 1.0, 2.0), ("t2", 1.5, 9.0)):
        run.events.append(
            m.TaskEvent(
                kind=m.EventKind.CLAIMED,
                agent_id="a",
                epoch=a.pid,
                at=claimed,
                task_id=task_id,
                attempt=1,
                task=m.Task(task_id=task_id, task_type="soak", submitted_at=submitted),
            )
        )
    assert run.verdict().longest_wait == (7.5, "t2")


def test_a_completed_task_with_a_step_never_committed_is_lost() -> None:
    run = Run({"t1": 4})
    a = run.agent("a", 1, 1.0)
    run.run("t1", 1, a, range(3), 2.0, complete=True)  # step 3 never ran
    run.beat(a)
    v = run.verdict()
    assert v.lost == ["t1: completed, steps never committed [3]"]


def test_a_step_resumed_from_a_wrong_state_is_a_violation() -> None:
    run = Run({"t1": 3})
    a = run.agent("a", 1, 1.0)
    run.run("t1", 1, a, range(3), 2.0, complete=True)
    run.lines[2] = dataclasses.replace(run.lines[2], digest="not-from-step-1")
    run.beat(a)
    v = run.verdict()
    assert v.wrong_state == ["t1 step 2 (attempt 1) from a wrong state"]


def test_the_exit_code_and_the_table_follow_the_verdict(tmp_path: Path) -> None:
    clean = Run({"t1": 2})
    a = clean.agent("a", 1, 1.0)
    clean.run("t1", 1, a, range(2), 2.0, complete=True)
    clean.beat(a)
    result = SoakResult(clean.evidence(), clean.verdict(), tmp_path, 1.0)
    assert result.exit_code == OK
    assert "violations" in render(result)

    result.verdict.unfinished = ["t9"]
    assert result.exit_code == INCONCLUSIVE
    result.verdict.false_failovers = ["b epoch 2 fenced"]
    assert result.exit_code == VIOLATIONS
    table = render(result)
    assert "FALSE_FAILOVERS: b epoch 2 fenced" in table
    assert result.to_dict()["verdict"]["violations"] == 1
