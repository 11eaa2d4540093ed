"""A running task through a broker outage: it pauses and completes, nothing fails.

``python -m bench.outage [--outage SECONDS] [--json PATH]``: starts the embedded broker and one
agent, dispatches a task of short steps (each guarded, each checkpointed), freezes the broker
process (SIGSTOP: every connection hangs, as when the broker is cut off) for ``--outage``
seconds (default 45, past librdkafka's default 30 s message timeout) while a step runs, then
lets it go on (SIGCONT). Prints what the handler and the agent saw: steps that acted while the
broker was gone (0 expected), the longest pause between two steps, the agent's status during the
outage, and how the task ended. Figures are printed, never asserted: this is not a test.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from agent_failover.broker.embedded import EmbeddedBroker
from agent_failover.config import AgentConfig, CheckpointPolicy, KafkaConfig, Topics
from agent_failover.dev.reading import read_topic
from agent_failover.dev.waiting import eventually
from agent_failover.models import DispatchReason, EventKind, Redispatch, SourceRef, Task, TaskEvent
from agent_failover.sdk import Agent, TaskContext
from agent_failover.sdk.health import AgentStatus
from agent_failover.topics import ensure_topics

STEPS = 40
STEP_S = 0.25
#: The outage starts once this many steps acted.
OUTAGE_AFTER_STEP = 5


def dispatch(bootstrap: str, topics: Topics, agent: Agent, task: Task) -> None:
    """Send ``task`` to ``agent`` as new work, as the monitor's intake would."""
    record = Redispatch(
        task=task,
        attempt=1,
        target_agent_id=agent.agent_id,
        target_epoch=agent.epoch,
        reason=DispatchReason.NEW,
        decision_id=uuid.uuid4().hex,
        dispatched_at=time.time(),
        source=SourceRef(partition=0, offset=0),
    )
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    producer.produce(topics.priority, key=agent.agent_id, value=record.encode())
    producer.flush(30)


def _status_if(agent: Agent, wanted: Callable[[AgentStatus], bool]) -> AgentStatus | None:
    status = agent.status()
    return status if wanted(status) else None


def run(outage_s: float, log_dir: Path) -> dict[str, Any]:
    """One outage of ``outage_s`` seconds during a task; returns the figures."""
    acted: list[tuple[int, float]] = []  # (step, monotonic time of its side effect)
    outage: dict[str, float] = {}
    started_outage = threading.Event()

    def handler(ctx: TaskContext) -> int:
        for step in range(ctx.next_step, STEPS):
            time.sleep(STEP_S)  # the step's work (a model call)
            ctx.guard()
            acted.append((step, time.monotonic()))
            if step == OUTAGE_AFTER_STEP:
                started_outage.set()
            ctx.progress(step, {"step": step})
        return STEPS

    with EmbeddedBroker(log_path=log_dir / "tansu.log") as broker:
        bootstrap = broker.bootstrap_servers
        topics = Topics(prefix=f"outage-{uuid.uuid4().hex[:8]}.")
        ensure_topics(bootstrap, topics)
        config = AgentConfig(
            kafka=KafkaConfig(bootstrap),
            agent_id=f"outage-{os.getpid()}",
            topics=topics,
            heartbeat_interval=0.5,
            heartbeat_timeout=3.0,
            checkpoint_policy=CheckpointPolicy.every_step(),
        )
        with Agent(config, handler) as agent:
            task = Task(task_id=f"t-{uuid.uuid4().hex[:8]}", task_type="outage")
            dispatch(bootstrap, topics, agent, task)
            if not started_outage.wait(60):
                raise RuntimeError("the task did not start")
            assert broker.pid is not None
            os.kill(broker.pid, signal.SIGSTOP)
            outage["from"] = time.monotonic()
            during = eventually(
                lambda: _status_if(agent, lambda s: not s.lease_valid),
                outage_s,
                "the lease to run out",
            )
            time.sleep(max(0.0, outage["from"] + outage_s - time.monotonic()))
            end_status = agent.status()
            os.kill(broker.pid, signal.SIGCONT)
            outage["to"] = time.monotonic()
            eventually(lambda: len(acted) >= STEPS or None, 300, "the task to finish")
            after = eventually(
                lambda: _status_if(agent, lambda s: s.lease_valid and not s.running),
                60,
                "the agent to be idle with a valid lease",
            )
        events = [
            TaskEvent.decode(r.value)
            for r in read_topic(KafkaConfig(bootstrap), topics.task_events)
            if r.value is not None
        ]
    kinds = [e.kind.value for e in events if e.task_id == task.task_id]
    times = [t for _s, t in acted]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    in_outage = [s for s, t in acted if outage["from"] < t < outage["to"]]
    return {
        "outage_s": round(outage["to"] - outage["from"], 1),
        "steps": len(acted),
        "steps_acted_during_outage": len(in_outage),
        "steps_acted_twice": len(acted) - len({s for s, _t in acted}),
        "longest_pause_between_steps_s": round(max(gaps), 1),
        "lease_ran_out_after_s": round(during.last_ack_age_s or 0.0, 1),
        "status_during_outage": {
            "broker_reachable": end_status.broker_reachable,
            "lease_valid": end_status.lease_valid,
            "fenced": end_status.fenced,
            "running": list(end_status.running),
        },
        "status_after": {"broker_reachable": after.broker_reachable, "fenced": after.fenced},
        "task_events": {k: kinds.count(k) for k in sorted(set(kinds))},
        "completed": EventKind.COMPLETED.value in kinds and EventKind.FAILED.value not in kinds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outage", type=float, default=45.0, help="seconds without a broker")
    parser.add_argument("--json", type=Path, help="write the figures there too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="af-outage-") as tmp:
        figures = run(args.outage, Path(tmp))
    text = orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode()
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
