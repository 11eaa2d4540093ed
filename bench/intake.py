"""What placing new work through the monitor costs: latency, throughput, and a full fleet's kill.

Four measurements, each on fresh topics with one monitor worker on the broker of the run:

* **latency**: submit -> ``claimed`` on an idle fleet (4 SDK agents, capacity 4, no-op tasks), one
  task at a time: the submitter's wall clock before ``submit()`` to the ``at`` of the agent's
  ``claimed`` event (one machine, one clock);
* **slot**: a completion -> the next claim on a full agent (capacity 1, a backlog waiting in the
  monitor): the ``at`` of ``completed`` to the ``at`` of the next ``claimed``, both from the agent;
* **throughput**: how many tasks per second one worker places: a simulated fleet
  (:mod:`bench.fleet`, heartbeats only, capacity 4 each) with room for every task, a batch
  submitted at once; decisions per second between the first and the last ``dispatched_at``;
* **kill**: two full agents (capacity 1) with a backlog waiting; SIGKILL one and start a fresh
  agent with two slots at once (room for the dead agent's task, which goes first once its fence
  is decided, and one more): seconds from SIGKILL (and from the fresh agent's first heartbeat,
  its Kafka timestamp: what the monitor can know of it) to the first backlog task it claims. No
  queued work is bound to the dead agent, so nothing waits for a group session to expire (with
  the agents' consumer group this took 9-11 s).

Run: ``.venv/bin/python -m bench.intake [--latency N] [--slot N] [--throughput N] [--kills N]``.
Figures are printed (and ``--json PATH`` writes them), never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from agent_failover import models as m
from agent_failover.broker.select import broker_from_env
from agent_failover.config import KafkaConfig, Topics
from agent_failover.dev.cluster import LocalCluster
from agent_failover.dev.observer import Observer
from agent_failover.dev.reading import read_topic
from agent_failover.dev.waiting import eventually
from agent_failover.sdk import TaskSubmitter
from agent_failover.topics import TopicSpec, ensure_topics
from bench.common import dist, say

#: Agent and monitor settings of every phase: quick beats, no-op steps unless a phase says.
ENV = {
    "AGENT_FAILOVER_HEARTBEAT_INTERVAL": "0.5",
    "AGENT_FAILOVER_HEARTBEAT_TIMEOUT": "2.0",
    "AGENT_FAILOVER_DEMO_STEP_SECONDS": "0,0",
    "AGENT_FAILOVER_METRICS_PORT": "0",
    "AGENT_FAILOVER_LOG_LEVEL": "WARNING",
}
DEADLINE = 120.0


@contextlib.contextmanager
def stage(
    bootstrap: str, log_dir: Path, name: str, env: Mapping[str, str] | None = None
) -> Iterator[tuple[LocalCluster, Observer, Topics]]:
    """Fresh topics, a running monitor that owns every partition, and an observer."""
    run = uuid.uuid4().hex[:6]
    topics = Topics(prefix=f"bi{run}-{name}.", agent_partitions=4, task_partitions=4)
    kafka = KafkaConfig(bootstrap_servers=bootstrap)
    ensure_topics(kafka, topics)
    results = f"{topics.prefix}results"  # the observer reads one; no step results are written
    ensure_topics(kafka, topics, specs=[TopicSpec(results, 1, {}, "results")])
    settings = {
        **ENV,
        "AGENT_FAILOVER_MONITOR_APP_ID": f"bi-{run}-{name}",
        "AGENT_FAILOVER_MONITOR_DATA_DIR": str(log_dir / f"{name}-monitor-data"),
        **(env or {}),
    }
    observer = Observer(kafka, topics, results).start()
    try:
        with LocalCluster(bootstrap, topics, log_dir / name, env=settings) as cluster:
            cluster.start_monitor()
            eventually(observer.monitor_ready, DEADLINE, "the monitor to own every partition")
            yield cluster, observer, topics
    finally:
        observer.stop()


def start_agents(cluster: LocalCluster, observer: Observer, names: list[str], **env: str) -> None:
    for name in names:
        cluster.start_agent(name, env)

    def started() -> bool:
        return {e.agent_id for e in observer.events(m.EventKind.AGENT_STARTED)} >= set(names)

    eventually(started, DEADLINE, "the agents to start")
    eventually(lambda: targets(observer) >= set(names), DEADLINE, "the monitor to see them")


def targets(observer: Observer) -> set[str]:
    """Agents the monitor's newest fleet summary lists as healthy targets."""
    summaries = observer.of(observer.topics.fleet)
    return {a.agent_id for a in summaries[-1].agents} if summaries else set()


def event(observer: Observer, kind: m.EventKind, task_id: str) -> m.TaskEvent | None:
    return next((e for e in observer.events(kind) if e.task_id == task_id), None)


def first_claim(observer: Observer, agent_id: str, not_of: set[str]) -> m.TaskEvent | None:
    """The first task ``agent_id`` claimed that is not one of ``not_of``."""
    claims = observer.events(m.EventKind.CLAIMED, agent_id)
    return next((e for e in claims if e.task_id not in not_of), None)


def task(task_id: str, steps: int = 1) -> m.Task:
    return m.Task(task_id=task_id, task_type="bench.intake", payload={"steps": steps})


def latency(bootstrap: str, log_dir: Path, n: int) -> dict[str, Any]:
    """Submit -> claimed on an idle fleet, one task at a time."""
    values: list[float] = []
    with stage(bootstrap, log_dir, "latency") as (cluster, observer, topics):
        start_agents(cluster, observer, [f"a{i}" for i in range(4)], AGENT_FAILOVER_CAPACITY="4")
        with TaskSubmitter(bootstrap, topics) as submitter:
            for i in range(n):
                task_id = f"lat-{i}"
                submitted = time.time()
                submitter.submit(task(task_id))
                claimed = eventually(
                    lambda t=task_id: event(observer, m.EventKind.CLAIMED, t), DEADLINE, "a claim"
                )
                values.append(claimed.at - submitted)
    return dist(values)


def slot(bootstrap: str, log_dir: Path, n: int) -> dict[str, Any]:
    """A completion -> the next claim on the only (full) agent."""
    step = {"AGENT_FAILOVER_DEMO_STEP_SECONDS": "0.2,0.2", "AGENT_FAILOVER_CAPACITY": "1"}
    with stage(bootstrap, log_dir, "slot", step) as (cluster, observer, topics):
        start_agents(cluster, observer, ["only"])
        ids = [f"slot-{i}" for i in range(n + 1)]
        with TaskSubmitter(bootstrap, topics) as submitter:
            submitter.submit_many([task(t) for t in ids])
        eventually(
            lambda: observer.completed_tasks() >= set(ids), DEADLINE * 2, "every task to complete"
        )
        # The agent's events in the order it wrote them (one partition): each claim after a
        # completion took the slot that completion freed.
        values, freed = [], None
        for e in observer.events(agent_id="only"):
            if e.kind is m.EventKind.COMPLETED:
                freed = e.at
            elif e.kind is m.EventKind.CLAIMED and freed is not None:
                values.append(e.at - freed)
                freed = None
    return dist(values)


def throughput(bootstrap: str, log_dir: Path, n: int) -> dict[str, Any]:
    """Tasks one worker places per second, with room for all of them on a simulated fleet."""
    agents = (n + 3) // 4 + 10  # capacity 4 each, and spare room
    with stage(bootstrap, log_dir, "throughput") as (_cluster, observer, topics):
        fleet = subprocess.Popen(
            [sys.executable, "-m", "bench.fleet", bootstrap, topics.prefix, "sim", "1.0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert fleet.stdin is not None and fleet.stdout is not None
            fleet.stdin.write(f"add {agents}\n")
            fleet.stdin.flush()
            fleet.stdout.readline()
            eventually(
                lambda: len(targets(observer)) >= agents, DEADLINE, "the fleet to be targets"
            )
            with TaskSubmitter(bootstrap, topics) as submitter:
                submitted = time.time()
                submitter.submit_many([task(f"tp-{i}") for i in range(n)])
                written = time.time()
            placed = eventually(
                lambda: (lambda w: w if len(w) >= n else None)(observer.new_work()),
                DEADLINE * 3,
                "every task placed",
            )
            fleet.stdin.write("quit\n")
            fleet.stdin.flush()
        finally:
            with contextlib.suppress(subprocess.TimeoutExpired):
                fleet.wait(10)
            if fleet.poll() is None:
                fleet.kill()
    at = sorted(r.dispatched_at for r in placed)
    return {
        "tasks": n,
        "agents": agents,
        "submit_s": round(written - submitted, 3),
        "decisions_per_s": round((n - 1) / (at[-1] - at[0]), 1),
        "submit_to_last_placed_s": round(at[-1] - submitted, 3),
    }


def kill(bootstrap: str, log_dir: Path, trials: int) -> dict[str, Any]:
    """SIGKILL of a full agent while a backlog waits; a fresh agent starts at once."""
    from_kill, from_beat = [], []
    env = {"AGENT_FAILOVER_DEMO_STEP_SECONDS": "0.5,0.5", "AGENT_FAILOVER_CAPACITY": "1"}
    for trial in range(trials):
        with stage(bootstrap, log_dir, f"kill{trial}", env) as (cluster, observer, topics):
            start_agents(cluster, observer, ["victim", "other"])
            with TaskSubmitter(bootstrap, topics) as submitter:
                submitter.submit_many([task(f"k-{i}", steps=60) for i in range(4)])
            eventually(
                lambda: len(observer.events(m.EventKind.CLAIMED)) >= 2, DEADLINE, "both busy"
            )
            busy = {e.task_id for e in observer.events(m.EventKind.CLAIMED)}
            cluster.procs["victim"].signal(signal.SIGKILL)
            killed = time.time()
            cluster.start_agent("fresh", {"AGENT_FAILOVER_CAPACITY": "2"})

            claimed = eventually(
                lambda o=observer, b=busy: first_claim(o, "fresh", not_of=b),
                DEADLINE,
                "a backlog task on the new agent",
            )
            beats = read_topic(bootstrap, topics.heartbeats)
            first_beat = min(r.timestamp_ms for r in beats if r.key == b"fresh") / 1000
            from_kill.append(claimed.at - killed)
            from_beat.append(claimed.at - first_beat)
            say(
                f"  kill {trial + 1}/{trials}: backlog task claimed {from_kill[-1]:.2f} s after "
                f"SIGKILL, {from_beat[-1]:.2f} s after the new agent's first heartbeat"
            )
    return {"from_sigkill_s": dist(from_kill), "from_first_heartbeat_s": dist(from_beat)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--latency", type=int, default=50, help="tasks, one at a time")
    parser.add_argument("--slot", type=int, default=30, help="completion -> next claim samples")
    parser.add_argument("--throughput", type=int, default=2000, help="tasks in one batch")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILL trials")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    log_dir = Path(tempfile.mkdtemp(prefix="af-bench-intake-"))
    say(f"logs in {log_dir}")
    out: dict[str, Any] = {}
    with broker_from_env(log_dir=log_dir) as broker:
        bootstrap = broker.bootstrap_servers
        out["broker"] = broker.kind
        if args.latency:
            out["latency_s"] = latency(bootstrap, log_dir, args.latency)
            say(f"submit -> claimed, idle fleet: {out['latency_s']}")
        if args.slot:
            out["slot_s"] = slot(bootstrap, log_dir, args.slot)
            say(f"completion -> next claim: {out['slot_s']}")
        if args.throughput:
            out["throughput"] = throughput(bootstrap, log_dir, args.throughput)
            say(f"throughput: {out['throughput']}")
        if args.kills:
            out["kill"] = kill(bootstrap, log_dir, args.kills)
            say(f"SIGKILL with a backlog: {out['kill']}")
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
