"""``agent-failover dev``: a real failover, shown as it happens.

Starts the broker (embedded Tansu unless ``KAFKA_BOOTSTRAP_SERVERS`` is set), the monitor and
three demo agent processes; submits 12 tasks of 10 steps (a checkpoint after every step, each step
a simulated LLM call); SIGKILLs the agent holding the most work midway; prints the timeline
(detection, which tasks moved where, the step each resumed from); and ends with a summary: detection
time, recovery time (RTO), steps redone and the exactly-once verdict of an independent ledger read
back from the broker. Exit code 0 only if every task completed exactly once.
"""

from __future__ import annotations

import dataclasses
import secrets
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from agent_failover import models as m
from agent_failover.broker.select import broker_from_env
from agent_failover.config import KafkaConfig, Topics
from agent_failover.dev.cluster import LocalCluster
from agent_failover.dev.ledger import StepResult, build_report
from agent_failover.dev.observer import Observer, Seen
from agent_failover.dev.processes import Proc
from agent_failover.dev.victim import busiest_agent, reached_step
from agent_failover.dev.waiting import eventually
from agent_failover.sdk import TaskSubmitter
from agent_failover.topics import TopicSpec, ensure_topics


@dataclasses.dataclass(frozen=True)
class DemoOptions:
    """Knobs of the demo (the defaults are what ``make demo`` shows)."""

    agents: int = 3
    tasks: int = 12
    steps: int = 10
    capacity: int = 8
    heartbeat_interval: float = 1.0
    heartbeat_timeout: float = 3.0
    step_seconds: tuple[float, float] = (0.25, 0.45)
    kill_at_step: int = 4  # SIGKILL once the victim's most advanced task has checkpointed this step
    timeout: float = 120.0
    log_dir: Path | None = None


class Timeline:
    """Prints one line per interesting record, relative to the demo's start."""

    def __init__(self, t0: float, topics: Topics) -> None:
        self.t0 = t0
        self.topics = topics
        self._lock = threading.Lock()
        self._resumed: set[tuple[str, int]] = set()

    def say(self, text: str, at: float | None = None) -> None:
        at = time.time() if at is None else at
        with self._lock:
            print(f"  +{at - self.t0:6.2f}s  {text}", flush=True)

    def on_record(self, seen: Seen) -> None:
        rec = seen.record
        if isinstance(rec, m.TaskEvent):
            if rec.kind is m.EventKind.AGENT_STARTED:
                self.say(
                    f"{rec.agent_id} started (epoch {rec.epoch}, capacity {rec.capacity})",
                    seen.seen,
                )
            elif rec.kind is m.EventKind.CLAIMED and rec.attempt == 1:
                self.say(f"{rec.agent_id} took {rec.task_id}", seen.seen)
            elif rec.kind is m.EventKind.CLAIMED:
                self.say(
                    f"{rec.agent_id} picked up {rec.task_id} (attempt {rec.attempt})", seen.seen
                )
            elif rec.kind is m.EventKind.COMPLETED:
                self.say(
                    f"{rec.task_id} completed by {rec.agent_id} (attempt {rec.attempt})", seen.seen
                )
        elif isinstance(rec, m.Control) and rec.kind is m.ControlKind.FENCE:
            age = f"{rec.last_heartbeat_age_s:.2f} s" if rec.last_heartbeat_age_s else "?"
            self.say(
                f"MONITOR: {rec.agent_id} FAILED ({rec.reason}, no heartbeat for {age}): "
                f"fenced epoch {rec.epoch}, moving {len(rec.plan)} task(s)",
                seen.seen,
            )
        elif isinstance(rec, m.Redispatch) and rec.reason is not m.DispatchReason.NEW:
            where = f"after step {rec.checkpoint.step}" if rec.checkpoint else "from the start"
            self.say(
                f"{rec.task_id} -> {rec.target_agent_id} (attempt {rec.attempt}), resumes {where}",
                seen.seen,
            )
        elif isinstance(rec, StepResult) and rec.attempt > 1:
            key = (rec.task_id, rec.attempt)
            if key not in self._resumed:
                self._resumed.add(key)
                self.say(f"{rec.agent_id} finished step {rec.step} of {rec.task_id}", seen.seen)


def run_demo(options: DemoOptions | None = None) -> int:
    """Run the demo; returns the process exit code."""
    opts = options or DemoOptions()
    run_id = uuid.uuid4().hex[:6]
    log_dir = opts.log_dir or Path(tempfile.mkdtemp(prefix="agent-failover-demo-"))
    topics = Topics(prefix=f"af.demo-{run_id}.")
    results_topic = f"{topics.prefix}demo-results"
    t0 = time.time()
    print("agent-failover demo: 3 agents, 12 tasks x 10 steps, one agent SIGKILLed midway")
    print(f"  logs: {log_dir}")
    with broker_from_env(log_dir=log_dir) as broker:
        timeline = Timeline(t0, topics)
        timeline.say(f"broker ready at {broker.bootstrap_servers} ({broker.kind})")
        # Every process of the demo signs its records with a key of this run (docs/security.md).
        signing_key = secrets.token_urlsafe(32)
        kafka = KafkaConfig(bootstrap_servers=broker.bootstrap_servers, signing_key=signing_key)
        ensure_topics(kafka, topics)
        ensure_topics(
            kafka,
            topics,
            specs=[TopicSpec(results_topic, topics.task_partitions, {}, "demo results")],
        )
        timeline.say(f"topics created (prefix {topics.prefix})")
        env = {
            "AGENT_FAILOVER_HEARTBEAT_INTERVAL": str(opts.heartbeat_interval),
            "AGENT_FAILOVER_HEARTBEAT_TIMEOUT": str(opts.heartbeat_timeout),
            "AGENT_FAILOVER_CAPACITY": str(opts.capacity),
            "AGENT_FAILOVER_DEMO_RESULTS_TOPIC": results_topic,
            "AGENT_FAILOVER_DEMO_STEP_SECONDS": ",".join(map(str, opts.step_seconds)),
            "AGENT_FAILOVER_MONITOR_APP_ID": f"af-demo-monitor-{run_id}",
            "AGENT_FAILOVER_METRICS_PORT": "0",
            "AGENT_FAILOVER_MONITOR_DATA_DIR": str(log_dir / "monitor-data"),
            "AGENT_FAILOVER_SIGNING_KEY": signing_key,
        }
        observer = Observer(kafka, topics, results_topic, on_record=timeline.on_record).start()
        agents = [f"agent-{i + 1}" for i in range(opts.agents)]
        with LocalCluster(broker.bootstrap_servers, topics, log_dir, env=env) as cluster:
            monitor = cluster.start_monitor()
            timeline.say(f"monitor started (pid {monitor.pid})")
            procs: dict[str, Proc] = {a: cluster.start_agent(a) for a in agents}
            eventually(observer.monitor_ready, 60, "the monitor to own every partition")
            timeline.say("monitor ready: owns every agent partition")
            eventually(
                lambda: (
                    {e.agent_id for e in observer.events(m.EventKind.AGENT_STARTED)} >= set(agents)
                ),
                60,
                "agents to start",
            )
            task_steps = {f"task-{i + 1:02d}": opts.steps for i in range(opts.tasks)}
            with TaskSubmitter(kafka, topics) as submitter:
                for task_id in task_steps:
                    submitter.submit(
                        m.Task(
                            task_id=task_id,
                            task_type="demo.summarise",
                            payload={"steps": opts.steps},
                            submitted_at=time.time(),
                        )
                    )
            timeline.say(f"{opts.tasks} tasks submitted")
            # The agent holding the most work once one of its tasks reached the kill step.
            ready = reached_step(opts.kill_at_step)
            victim = eventually(
                lambda: busiest_agent(observer.holdings(), ready),
                opts.timeout,
                "tasks to reach the kill step",
            )
            held = set(observer.holdings().get(victim, {}))
            procs[victim].signal(signal.SIGKILL)
            kill_at = time.time()
            timeline.say(
                f"SIGKILL {victim} (pid {procs[victim].pid}) holding {len(held)} task(s): "
                f"{', '.join(sorted(held))}"
            )
            try:
                eventually(
                    lambda: observer.outcomes().keys() >= task_steps.keys(),
                    opts.timeout,
                    "every task's outcome",
                )
            except TimeoutError:
                tail = monitor.log_tail()
                print(f"\nFAILED: not every task has its outcome; monitor log tail:\n{tail}")
                return 1
            timeline.say("all tasks completed; stopping agents and monitor")
        observer.sync()  # "exactly one fence" needs every decision written so far
        observer.stop()
        report = build_report(kafka, results_topic, topics, task_steps)
        return _summary(observer, report, victim, held, kill_at, timeline)


def _summary(
    observer: Observer, report: Any, victim: str, held: set[str], kill_at: float, timeline: Timeline
) -> int:
    fences = observer.fences(victim)
    snapshot = observer.snapshot()
    fence_seen = next(
        (
            s.seen
            for s in snapshot
            if isinstance(s.record, m.Control)
            and s.record.kind is m.ControlKind.FENCE
            and s.record.agent_id == victim
        ),
        None,
    )
    rto: dict[str, float] = {}
    for s in snapshot:
        rec = s.record
        # Recovered = the new owner has read the checkpoint and starts the next step.
        if (
            isinstance(rec, m.TaskEvent)
            and rec.kind is m.EventKind.CLAIMED
            and rec.attempt is not None
            and rec.attempt > 1
            and rec.task_id in held
        ):
            rto.setdefault(rec.task_id, s.seen - kill_at)
    print("\nSummary")
    if fence_seen is not None:
        age = fences[0].last_heartbeat_age_s if fences else None
        print(
            f"  detection: {fence_seen - kill_at:.2f} s from SIGKILL to the fence decision"
            + (f" (last heartbeat {age:.2f} s old when decided)" if age else "")
        )
    else:
        print("  detection: no fence decision seen")
    if rto:
        values = sorted(rto.values())
        print(
            f"  RTO (SIGKILL to resumed elsewhere), {len(values)} task(s): "
            f"min {values[0]:.2f} s, median {statistics.median(values):.2f} s, "
            f"max {values[-1]:.2f} s"
        )
    moved_resume = {
        r.task_id: r.checkpoint.step if r.checkpoint else -1 for r in observer.redispatches(victim)
    }
    for task_id in sorted(moved_resume):
        print(
            f"    {task_id}: resumed after step {moved_resume[task_id]}"
            + (f", RTO {rto[task_id]:.2f} s" if task_id in rto else "")
        )
    print(
        f"  steps redone (executed but not committed): {report.steps_redone}"
        f" over {len(moved_resume)} moved task(s)"
    )
    duplicates = sum(len(t.duplicates) for t in report.tasks.values())
    print(
        f"  ledger: {sum(1 for t in report.tasks.values() if t.ok)}/{len(report.tasks)} tasks "
        f"completed exactly once, {duplicates} step(s) committed twice"
    )
    if not report.ok or len(fences) != 1:
        for problem in report.problems():
            print(f"  PROBLEM: {problem}")
        if len(fences) != 1:
            print(f"  PROBLEM: {len(fences)} fence decisions for {victim}, expected exactly 1")
        return 1
    print("  OK: every task completed exactly once")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_demo()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
