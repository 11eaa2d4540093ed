"""How long normal tasks still *queued* on a dead agent's partitions wait for a new owner.

Tasks an agent has claimed move through the monitor within the heartbeat timeout. Tasks it has
not taken yet sit in its partitions of the normal task topic until the agents' consumer group
reassigns them: after the dead member's session timeout, plus the rebalance. This measures that
bound: two agents of capacity 1, a backlog of tasks on every partition, SIGKILL one agent, time
until a task of one of its partitions is claimed by the survivor.

Run: ``.venv/bin/python -m bench.queued_release [--trials N] [--session-ms MS]``.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer

from agent_failover import models as m
from agent_failover.broker.select import broker_from_env
from agent_failover.config import KafkaConfig, Topics
from agent_failover.dev.cluster import LocalCluster
from agent_failover.dev.observer import Observer
from agent_failover.dev.waiting import eventually
from agent_failover.topics import TopicSpec, ensure_topics


def trial(bootstrap: str, session_ms: int, log_dir: Path) -> float:
    """One kill; returns seconds from SIGKILL to the first re-read queued task being claimed."""
    run = uuid.uuid4().hex[:8]
    topics = Topics(prefix=f"q{run}.", agent_partitions=2, task_partitions=4)
    results = f"{topics.prefix}results"
    kafka = KafkaConfig(bootstrap_servers=bootstrap)
    ensure_topics(kafka, topics)
    ensure_topics(kafka, topics, specs=[TopicSpec(results, 1, {}, "results")])
    env = {
        "AGENT_FAILOVER_GROUP_ID": f"q-agents-{run}",
        "AGENT_FAILOVER_SESSION_TIMEOUT_MS": str(session_ms),
        "AGENT_FAILOVER_DEMO_RESULTS_TOPIC": results,
        "AGENT_FAILOVER_DEMO_STEP_SECONDS": "0.5,0.5",
    }
    observer = Observer(kafka, topics, results).start()
    try:
        with LocalCluster(bootstrap, topics, log_dir / run, env=env) as cluster:
            # The victim is full (capacity 1), so work queues on its partitions; the survivor has
            # room, so it takes queued work the moment the group hands it those partitions.
            procs = {
                "qa": cluster.start_agent("qa", {"AGENT_FAILOVER_CAPACITY": "1"}),
                "qb": cluster.start_agent("qb", {"AGENT_FAILOVER_CAPACITY": "16"}),
            }
            eventually(
                lambda: len(observer.events(m.EventKind.AGENT_STARTED)) >= 2,
                60,
                "both agents to start",
            )
            producer = Producer(kafka.as_librdkafka_dict())
            for i in range(12):
                task = m.Task(task_id=f"q-{i}", task_type="demo", payload={"steps": 200})
                producer.produce(
                    topics.tasks,
                    key=task.task_id.encode(),
                    value=task.encode(),
                    partition=i % topics.task_partitions,
                )
            producer.flush(10)

            def sources(agent: str, after: float = 0.0) -> list[m.TaskEvent]:
                return [
                    e
                    for e in observer.events(m.EventKind.CLAIMING, agent)
                    if e.source is not None and e.at > after
                ]

            eventually(
                lambda: bool(sources("qa")) and bool(sources("qb")), 60, "both agents to claim"
            )
            victim_parts = {e.source.partition for e in sources("qa") if e.source}
            procs["qa"].signal(signal.SIGKILL)
            killed = time.time()

            def taken_over() -> list[float]:
                return [
                    e.at
                    for e in sources("qb", killed)
                    if e.source is not None and e.source.partition in victim_parts
                ]

            taken = eventually(taken_over, 120, "the survivor to take a queued task")
            return min(taken) - killed
    finally:
        observer.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--session-ms", type=int, default=6000)
    args = parser.parse_args(argv)
    log_dir = Path(tempfile.mkdtemp(prefix="af-queued-"))
    values = []
    with broker_from_env(log_dir=log_dir) as broker:
        for n in range(args.trials):
            seconds = trial(broker.bootstrap_servers, args.session_ms, log_dir)
            values.append(seconds)
            print(
                f"trial {n + 1}/{args.trials}: queued task re-owned {seconds:.2f} s after SIGKILL",
                flush=True,
            )
    print(
        f"session.timeout.ms={args.session_ms}: min {min(values):.2f} s, "
        f"median {statistics.median(values):.2f} s, max {max(values):.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
