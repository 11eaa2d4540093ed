"""Benchmark agent process: the SDK's :class:`Agent` running multi-step tasks, instrumented.

Like ``agent_failover.dev.worker`` (same ``StepResult`` records, written before each step's
checkpoint, so the ledger rules apply), with two differences for measuring:

* ``StepResult.at`` is when the step *started* (after the resume point was loaded), so "resumed
  elsewhere" is the moment the new owner begins work, not the end of its first step;
* a step's simulated model call is interruptible: on SIGTERM the agent stops at once (the call
  is abandoned, as a real agent would cancel an in-flight request) and releases the task with its
  last checkpoint, so graceful handoff is not padded by a step's duration.

Task types: ``bench.steps`` (payload ``{"steps": N}``) and ``bench.checkpoint`` (payload
``{"n": N, "out": PATH}``: N checkpoints back to back, each timed, latencies written as JSON to
PATH). Environment: ``AgentConfig.from_env`` plus ``AGENT_FAILOVER_DEMO_RESULTS_TOPIC`` and
``BENCH_STEP_SECONDS`` (``min,max``, default ``0.2,0.3``).
"""

from __future__ import annotations

import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from agent_failover.config import AgentConfig
from agent_failover.dev.ledger import StepResult
from agent_failover.errors import AgentFailoverError
from agent_failover.sdk import Agent, TaskContext

log = logging.getLogger("bench.af_worker")


def _interruptible_call(ctx: TaskContext, seconds: float) -> bool:
    """Sleep ``seconds`` in short slices; False if the agent is stopping or fenced meanwhile."""
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return True
        if ctx.stopping or ctx.fenced:
            return False
        time.sleep(min(0.01, left))


def make_handler(results: Producer | None, topic: str, step_range: tuple[float, float]) -> Any:
    """The task handler for both task types."""

    def checkpoints(ctx: TaskContext) -> dict[str, Any]:
        payload = ctx.task.payload if isinstance(ctx.task.payload, dict) else {}
        n = int(payload.get("n", 100))
        state = {"blob": "x" * int(payload.get("state_bytes", 200))}
        latencies = []
        for i in range(n):
            t = time.perf_counter()
            ctx.checkpoint(i, state)
            latencies.append(time.perf_counter() - t)
        out = payload.get("out")
        if out:
            Path(out).write_bytes(orjson.dumps(latencies))
        return {"n": n}

    def steps(ctx: TaskContext) -> dict[str, Any]:
        payload = ctx.task.payload if isinstance(ctx.task.payload, dict) else {}
        total = int(payload.get("steps", 10))
        state: dict[str, Any] = ctx.state if isinstance(ctx.state, dict) else {"done": 0}
        for step in range(ctx.next_step, total):
            started = time.time()
            if not _interruptible_call(ctx, random.uniform(*step_range)):
                ctx.raise_if_fenced()
                ctx.raise_if_stopping()
            if results is not None:
                result = StepResult(
                    task_id=ctx.task.task_id,
                    attempt=ctx.attempt,
                    step=step,
                    agent_id=ctx.agent_id,
                    epoch=ctx.epoch,
                    output=str(step),
                    at=started,
                )
                results.produce(topic, key=ctx.task.task_id.encode(), value=result.encode())
                results.flush(10)  # the result is durable before the step's checkpoint
            state = {"done": step + 1}
            ctx.progress(step, state)
        return {"steps": total}

    def handle(ctx: TaskContext) -> dict[str, Any]:
        if ctx.task.task_type == "bench.checkpoint":
            return checkpoints(ctx)
        return steps(ctx)

    return handle


def main() -> int:
    logging.basicConfig(
        level=os.environ.get("AGENT_FAILOVER_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = AgentConfig.from_env()
    topic = os.environ.get("AGENT_FAILOVER_DEMO_RESULTS_TOPIC", "")
    low, high = (float(x) for x in os.environ.get("BENCH_STEP_SECONDS", "0.2,0.3").split(","))
    results = (
        Producer(
            {
                **config.kafka.as_librdkafka_dict(),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 0,
            }
        )
        if topic
        else None
    )
    try:
        with Agent(config, make_handler(results, topic, (low, high))) as agent:
            agent.run()
    except AgentFailoverError as exc:
        log.warning("agent stopped: %s", exc)
        return 1
    finally:
        if results is not None:
            results.flush(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
