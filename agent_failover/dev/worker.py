"""A demo agent process: runs multi-step tasks whose steps are simulated LLM calls.

Configuration comes from the environment (``AgentConfig.from_env``) plus:

* ``AGENT_FAILOVER_DEMO_RESULTS_TOPIC``: where each executed step's result is written (required);
* ``AGENT_FAILOVER_DEMO_STEP_SECONDS``: ``min,max`` duration of one simulated call
  (default 0.2,0.4).

Each step writes its result durably *before* its checkpoint, so the ledger can tell a redone step
from a committed one (see ``agent_failover.dev.ledger``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import sys
import time
from typing import Any

from confluent_kafka import Producer

from agent_failover.config import AgentConfig
from agent_failover.dev.ledger import StepResult
from agent_failover.errors import AgentFailoverError, ConfigError
from agent_failover.sdk import Agent, TaskContext

log = logging.getLogger("agent_failover.dev.worker")


def step_seconds_from_env() -> tuple[float, float]:
    raw = os.environ.get("AGENT_FAILOVER_DEMO_STEP_SECONDS", "0.2,0.4")
    try:
        low, high = (float(x) for x in raw.split(","))
    except ValueError:
        raise ConfigError(f"AGENT_FAILOVER_DEMO_STEP_SECONDS={raw!r}: expected min,max") from None
    if not 0 <= low <= high:
        raise ConfigError(f"AGENT_FAILOVER_DEMO_STEP_SECONDS={raw!r}: need 0 <= min <= max")
    return low, high


def simulated_llm_call(prompt: str, seconds: float) -> str:
    """Stand-in for a model call: takes a while, returns a deterministic answer."""
    time.sleep(seconds)  # the work itself, not synchronisation
    return hashlib.sha256(prompt.encode()).hexdigest()[:12]


def make_handler(results: Producer, topic: str, step_range: tuple[float, float]) -> Any:
    """The task handler: resume after the checkpointed step, one result + checkpoint per step."""

    def handle(ctx: TaskContext) -> dict[str, Any]:
        steps = int(ctx.task.payload.get("steps", 10)) if isinstance(ctx.task.payload, dict) else 10
        state: dict[str, Any] = ctx.state if isinstance(ctx.state, dict) else {"digest": ""}
        for step in range(ctx.next_step, steps):
            output = simulated_llm_call(
                f"{ctx.task.task_id}:{step}:{state['digest']}", random.uniform(*step_range)
            )
            result = StepResult(
                task_id=ctx.task.task_id,
                attempt=ctx.attempt,
                step=step,
                agent_id=ctx.agent_id,
                epoch=ctx.epoch,
                output=output,
                at=time.time(),
            )
            results.produce(topic, key=ctx.task.task_id.encode(), value=result.encode())
            results.flush(10)  # the result is durable before the step's checkpoint
            state = {"digest": output}
            ctx.progress(step, state)
        return {"digest": state["digest"], "steps": steps}

    return handle


def main() -> int:
    logging.basicConfig(
        level=os.environ.get("AGENT_FAILOVER_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = AgentConfig.from_env()
        topic = os.environ.get("AGENT_FAILOVER_DEMO_RESULTS_TOPIC")
        if not topic:
            raise ConfigError("AGENT_FAILOVER_DEMO_RESULTS_TOPIC is not set")
        step_range = step_seconds_from_env()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results = Producer(
        {
            **config.kafka.as_librdkafka_dict(),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 1,
        }
    )
    try:
        with Agent(config, make_handler(results, topic, step_range)) as agent:
            agent.run()
    except AgentFailoverError as exc:
        log.error("agent stopped: %s", exc)
        return 1
    finally:
        results.flush(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
