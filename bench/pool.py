"""A live pool of SDK agents and one monitor, and one failover trial on it (``bench.failover``).

A pool (:class:`Pool`) is one monitor worker and three agents (``agent_failover.dev.worker``,
capacity 2) with a feeder keeping three 30-step tasks outstanding, so agents are always mid-task
and there is always free capacity for the moved work. One trial: choose the agent holding the
most tasks that have checkpointed at least once, wait a random fraction of a heartbeat interval,
SIGKILL (or SIGTERM) it, wait until every task it held runs elsewhere, start a replacement agent,
go on. One monitor and pool serve all the trials of a configuration.

Timings (wall clock, shared by every process of the machine; see docs/benchmarks/README.md):

* ``detection_s``: last heartbeat seen by the monitor -> fence decision
  (the fence record's ``last_heartbeat_age_s``; the decision time is its ``issued_at``);
* ``kill_to_decision_s``: SIGKILL -> ``issued_at``;
* ``dispatch_s``: ``issued_at`` -> Kafka timestamp of the last ``redispatch`` record written;
* ``resume_s``: that record -> the last moved task's first step started by its new attempt;
* ``e2e_s``: SIGKILL -> every moved task has started a step elsewhere;
* ``overhead_s``: last heartbeat seen -> every moved task resumed, minus ``heartbeat_timeout``
  (what detection, dispatch and resume add to the timeout);
* ``steps_redone``: steps the dead attempt executed (result written) after the checkpoint the
  redispatch names, so they run again; ``progress_lost_s``: the dead attempt's work time after
  that checkpoint (from the start of the first uncommitted step to the kill).

Graceful trials (SIGTERM) give ``handoff_s``: SIGTERM -> every released task resumed elsewhere.
"""

from __future__ import annotations

import random
import signal
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from agent_failover import models as m
from agent_failover.config import KafkaConfig, Topics
from agent_failover.dev.cluster import LocalCluster
from agent_failover.dev.ledger import StepResult
from agent_failover.dev.processes import Proc
from agent_failover.dev.reading import Rec
from agent_failover.dev.victim import busiest_agent
from agent_failover.dev.waiting import eventually
from agent_failover.sdk import TaskSubmitter
from agent_failover.topics import TopicSpec, ensure_topics
from bench.common import BenchContext
from bench.recorder import Recorder

AGENTS = 3
CAPACITY = 2
OUTSTANDING = 3
STEPS = 30
STEP_SECONDS = "0.2,0.3"


class Pool:
    """One monitor, a few agents and a task feeder on their own topics."""

    def __init__(
        self,
        ctx: BenchContext,
        name: str,
        *,
        interval: float,
        timeout: float,
        policy: str = "every_step",
        agents: int = AGENTS,
    ) -> None:
        self.ctx = ctx
        self.name = name
        self.interval = interval
        self.timeout = timeout
        self.policy = policy
        self.topics = Topics(prefix=ctx.prefix(name))
        self.results_topic = f"{self.topics.prefix}results"
        self.kafka = KafkaConfig(bootstrap_servers=ctx.bootstrap)
        self.log_dir = ctx.logs(f"failover-{name}")
        ensure_topics(self.kafka, self.topics)
        ensure_topics(
            self.kafka,
            self.topics,
            specs=[TopicSpec(self.results_topic, self.topics.task_partitions, {}, "results")],
        )
        env = {
            "AGENT_FAILOVER_HEARTBEAT_INTERVAL": str(interval),
            "AGENT_FAILOVER_HEARTBEAT_TIMEOUT": str(timeout),
            "AGENT_FAILOVER_CAPACITY": str(CAPACITY),
            "AGENT_FAILOVER_CHECKPOINT_POLICY": policy,
            "AGENT_FAILOVER_DEMO_RESULTS_TOPIC": self.results_topic,
            "AGENT_FAILOVER_DEMO_STEP_SECONDS": STEP_SECONDS,
            "AGENT_FAILOVER_MONITOR_APP_ID": f"af-bench-{name}-{uuid.uuid4().hex[:6]}",
            # A group of its own: SIGKILLed members of another pool's group would hold up joins.
            "AGENT_FAILOVER_METRICS_PORT": "0",
            "AGENT_FAILOVER_MONITOR_DATA_DIR": str(self.log_dir / "monitor-data"),
            "AGENT_FAILOVER_LOG_LEVEL": "INFO",
        }
        self.cluster = LocalCluster(ctx.bootstrap, self.topics, self.log_dir, env=env)
        self.rec = Recorder(ctx.bootstrap, self.topics, self.results_topic)
        self.agents: dict[str, Proc] = {}
        self._next_agent = 0
        self._n_agents = agents
        self._stop = threading.Event()
        self._feeder = threading.Thread(target=self._feed, name="feeder", daemon=True)
        self.submitter = TaskSubmitter(self.kafka, self.topics)
        self._task_no = 0
        self.killed: set[tuple[str, int]] = set()

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Pool:
        self.rec.start()
        self.monitor = self.cluster.start_monitor()
        for _ in range(self._n_agents):
            self.add_agent()
        try:
            eventually(
                lambda: len(self.live_epochs()) >= self._n_agents and self.monitor.alive,
                90,
                "the agents to start",
                interval=0.1,
            )
            # Wait until the monitor reports every agent healthy (it has their heartbeats): the
            # first kill must come after that, or it measures start-up rather than failover.
            eventually(
                lambda: set(self.live_epochs().items()) <= self.rec.monitored(),
                90,
                "the monitor to report the agents healthy",
                interval=0.1,
            )
        except TimeoutError as exc:
            raise RuntimeError(
                f"pool {self.name}: {exc}; monitor log:\n{self.monitor.log_tail()}"
            ) from None
        self._feeder.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._feeder.join(5)
        self.submitter.close()
        self.cluster.stop_all(timeout=10)
        self.rec.stop()

    def __enter__(self) -> Pool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_agent(self) -> str:
        self._next_agent += 1
        name = f"{self.name}-a{self._next_agent}"
        self.agents[name] = self.cluster.start_agent(name)
        return name

    def live_epochs(self) -> dict[str, int]:
        self.rec.refresh()
        return {
            a: e for a, e in self.rec.epochs.items() if a in self.agents and self.agents[a].alive
        }

    def _feed(self) -> None:
        while not self._stop.wait(0.2):
            self.rec.refresh()
            outstanding = len(self.rec.submitted - self.rec.finished)
            while outstanding < OUTSTANDING and not self._stop.is_set():
                self._task_no += 1
                task_id = f"{self.name}-t{self._task_no}"
                self.submitter.submit(
                    m.Task(task_id=task_id, task_type="bench.steps", payload={"steps": STEPS})
                )
                self.rec.submitted.add(task_id)
                outstanding += 1

    # -- trials ---------------------------------------------------------------------------

    def _victim(self) -> tuple[str, int, dict[str, int]] | None:
        """The busiest live agent whose tasks all checkpointed and are not near their end."""
        monitored = self.rec.monitored()
        held: dict[str, dict[str, int]] = {}  # agent -> task -> attempt
        steps: dict[str, dict[str, int]] = {}  # agent -> task -> checkpointed step
        epochs = {a: e for a, e in self.live_epochs().items() if (a, e) in monitored}
        for agent, epoch in epochs.items():  # the others are still starting
            held[agent] = dict(self.rec.held.get((agent, epoch), {}))
            steps[agent] = {
                t: self.rec.checkpointed.get((t, a), -1) for t, a in held[agent].items()
            }

        def ready(agent: str, tasks: Mapping[str, int]) -> bool:
            if all(0 <= step < STEPS - 8 for step in tasks.values()):
                return True
            return self.policy != "every_step" and self._started_long_enough(held[agent])

        victim = busiest_agent(steps, ready)
        return None if victim is None else (victim, epochs[victim], held[victim])

    def _started_long_enough(self, held: dict[str, int]) -> bool:
        """For sparse checkpoint policies: each held attempt has run 3 steps, not near the end."""
        steps: dict[tuple[str, int], int] = {}
        for _rec, v in self.rec.items:
            if isinstance(v, StepResult) and (v.task_id, v.attempt) in held.items():
                steps[(v.task_id, v.attempt)] = max(steps.get((v.task_id, v.attempt), -1), v.step)
        return all(3 <= steps.get((t, a), -1) < STEPS - 8 for t, a in held.items())

    def ensure_agents(self) -> None:
        """Replace agents that exited (a fenced agent exits), up to 10 at a time."""
        for _ in range(10):
            dead = [a for a, p in self.agents.items() if not p.alive]
            for a in dead:
                del self.agents[a]
            if len(self.agents) >= self._n_agents:
                return
            self.add_agent()

    def false_fences(self) -> list[dict[str, Any]]:
        """Fences of epochs this harness did not kill (live agents declared dead)."""
        out = []
        for _rec, v in self.rec.refresh():
            if (
                isinstance(v, m.Control)
                and v.kind is m.ControlKind.FENCE
                and (v.agent_id, v.epoch) not in self.killed
            ):
                out.append({"agent": v.agent_id, "reason": str(v.reason), "at": v.issued_at})
        return out

    def trial(self, sig: signal.Signals) -> dict[str, Any]:
        """Kill (SIGKILL) or stop (SIGTERM) one agent; measure; replace it."""
        self.ensure_agents()
        try:
            victim, epoch, held = eventually(self._victim, 30, "an agent holding checkpointed work")
        except TimeoutError:
            path = self.dump("no-victim.txt", time.time() - 30)
            return {"error": f"no agent held checkpointed work within 30 s (see {path})"}
        time.sleep(random.uniform(0, self.interval))  # a random phase against the heartbeats
        proc = self.agents[victim]
        self.killed.add((victim, epoch))
        sent_at = time.time()
        proc.signal(sig)
        limit = self.timeout + 20
        try:
            eventually(
                lambda: self._moved_and_resumed(victim, epoch, held), limit, "the tasks to resume"
            )
            result: dict[str, Any] | None = self._measure(victim, epoch, held, sent_at, sig)
        except TimeoutError:
            result = None
        if proc.wait(10) is None:  # a graceful stop that did not end: no longer graceful
            proc.signal(signal.SIGKILL)
            proc.wait(5)
        self.add_agent()
        if result is None:
            path = self.dump(f"failed-{victim}.txt", sent_at - 5)
            return {"error": f"tasks of {victim} not resumed within {limit:.0f} s (see {path})"}
        return result

    def dump(self, filename: str, since: float) -> str:
        """Write the protocol records seen since ``since`` (step results left out) for diagnosis."""
        path = self.log_dir / filename
        with path.open("w") as f:
            for rec, v in self.rec.refresh():
                if rec.seen < since or isinstance(v, StepResult):
                    continue
                if isinstance(v, m.TaskEvent) and v.kind is m.EventKind.CHECKPOINTED:
                    continue
                d = v.to_dict()
                d.pop("task", None)
                f.write(f"{rec.seen:.3f} {rec.topic} {d}\n")
            f.write(f"held: {dict(self.rec.held)}\nlive: {self.live_epochs()}\n")
            f.write(f"outstanding: {sorted(self.rec.submitted - self.rec.finished)}\n")
        return str(path)

    def _moved(self, victim: str, epoch: int) -> dict[str, tuple[Rec, m.Redispatch]]:
        out: dict[str, tuple[Rec, m.Redispatch]] = {}
        for rec, v in self.rec.items:
            if isinstance(v, m.Redispatch) and v.from_agent_id == victim and v.from_epoch == epoch:
                out.setdefault(v.task_id, (rec, v))
        return out

    def _moved_and_resumed(
        self, victim: str, epoch: int, held: dict[str, int]
    ) -> dict[str, float] | None:
        self.rec.refresh()
        moved = self._moved(victim, epoch)
        if not set(held) <= set(moved):
            return None
        first: dict[str, float] = {}
        for _rec, v in self.rec.items:
            if (
                isinstance(v, StepResult)
                and v.task_id in moved
                and v.attempt == moved[v.task_id][1].attempt
            ):
                first.setdefault(v.task_id, v.at)
        return first if set(first) >= set(held) else None

    def _measure(
        self, victim: str, epoch: int, held: dict[str, int], sent_at: float, sig: signal.Signals
    ) -> dict[str, Any]:
        resumed = self._moved_and_resumed(victim, epoch, held) or {}
        moved = self._moved(victim, epoch)
        items = self.rec.items
        fence = next(
            (
                (r, v)
                for r, v in items
                if isinstance(v, m.Control)
                and v.kind is m.ControlKind.FENCE
                and v.agent_id == victim
                and v.epoch == epoch
            ),
            None,
        )
        decision = next(
            (
                (r, v)
                for r, v in items
                if isinstance(v, m.Control)
                and v.agent_id == victim
                and v.epoch == epoch
                and any(p.task_id in held for p in v.plan)
            ),
            None,
        )
        last_dispatch_ts = max(r.timestamp_ms for r, _ in moved.values()) / 1000
        last_resume = max(resumed[t] for t in held)
        first_resume = min(resumed[t] for t in held)
        out: dict[str, Any] = {
            "agent": victim,
            "tasks": len(held),
            "e2e_s": last_resume - sent_at,
            "e2e_first_task_s": first_resume - sent_at,
            "resume_s": last_resume - last_dispatch_ts,
        }
        if decision is not None:
            ctl = decision[1]
            out["decision_kind"] = ctl.kind.value
            out["dispatch_s"] = last_dispatch_ts - ctl.issued_at
            out["kill_to_decision_s"] = ctl.issued_at - sent_at
        if sig is signal.SIGKILL and fence is not None:
            ctl = fence[1]
            age = ctl.last_heartbeat_age_s
            if age is not None:
                last_hb = ctl.issued_at - age
                out["detection_s"] = age
                out["last_hb_before_kill_s"] = sent_at - last_hb
                out["e2e_from_last_hb_s"] = last_resume - last_hb
                out["overhead_s"] = last_resume - last_hb - self.timeout
        # Work lost: steps the dead attempt executed after the checkpoint the redispatch names.
        redone = 0
        lost = 0.0
        for task, (_r, rd) in moved.items():
            if task not in held:
                continue
            ck = rd.checkpoint.step if rd.checkpoint is not None else -1
            old = [
                v
                for _r2, v in items
                if isinstance(v, StepResult) and v.task_id == task and v.attempt == held[task]
            ]
            redone += sum(1 for v in old if v.step > ck)
            after = [v.at for v in old if v.step == ck + 1]
            if after:
                lost += max(0.0, sent_at - min(after))
        out["steps_redone"] = redone
        out["progress_lost_s"] = lost
        out["checkpoint_steps"] = {
            t: (rd.checkpoint.step if rd.checkpoint else -1) for t, (_r, rd) in moved.items()
        }
        return out
