"""The agent process of the demo, the end-to-end tests and the benchmarks.

It runs the SDK's :class:`~agent_failover.sdk.Agent` with a handler for two task types:

* any type but ``bench.checkpoint`` (payload ``{"steps": N}``, default 10): N steps, each a
  simulated LLM call, writing a ``StepResult`` (``at`` = when the step started) durably *before*
  the step's checkpoint, so the ledger can tell a redone step from a committed one
  (see ``agent_failover.dev.ledger``);
* ``bench.checkpoint`` (payload ``{"n": N, "out": PATH, "state_bytes": B}``): N checkpoints of a
  B-byte state back to back, each timed; the latencies (seconds) are written as JSON to PATH.

A simulated call is given up at once when the attempt is fenced or moved (nothing it produced
would count). On a graceful stop (SIGTERM) the step in flight is finished within
``AGENT_FAILOVER_HANDOFF_WAIT`` (10 s by default), so that its checkpoint is what moves; with a
handoff wait of 0 the call is given up at once instead, as an agent would cancel an in-flight
request, and the task moves with its last checkpoint. Each step's side effect (its result) is
written only after ``ctx.guard()``: never by an attempt fenced, moved or released meanwhile, nor
while the agent's lease is not valid.

Configuration comes from the environment (``AgentConfig.from_env``) plus:

* ``AGENT_FAILOVER_DEMO_RESULTS_TOPIC``: where step results are written (unset: not written,
  for runs that need no ledger);
* ``AGENT_FAILOVER_DEMO_STEP_SECONDS``: ``min,max`` duration of one simulated call
  (default 0.2,0.4);
* ``AGENT_FAILOVER_DEMO_LEDGER_DIR``: a directory where each step is also recorded, fsynced,
  before its checkpoint, in a file of this process (unset: not recorded): the soak's own ledger,
  independent of the broker (``agent_failover.dev.soak.steplog``).

A step's output is :func:`step_digest` of the task, the step and the previous step's output, so
a step that resumed from the wrong state shows in its output.
"""

from __future__ import annotations

import hashlib
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
from agent_failover.dev.soak.steplog import LEDGER_DIR_ENV, StepLog
from agent_failover.errors import AgentFailoverError, ConfigError
from agent_failover.logs import setup_logging
from agent_failover.sdk import Agent, TaskContext

log = logging.getLogger("agent_failover.dev.worker")

CHECKPOINT_TASK = "bench.checkpoint"


def step_seconds_from_env() -> tuple[float, float]:
    """``AGENT_FAILOVER_DEMO_STEP_SECONDS`` as (min, max); ConfigError if malformed."""
    raw = os.environ.get("AGENT_FAILOVER_DEMO_STEP_SECONDS", "0.2,0.4")
    try:
        low, high = (float(x) for x in raw.split(","))
    except ValueError:
        raise ConfigError(f"AGENT_FAILOVER_DEMO_STEP_SECONDS={raw!r}: expected min,max") from None
    if not 0 <= low <= high:
        raise ConfigError(f"AGENT_FAILOVER_DEMO_STEP_SECONDS={raw!r}: need 0 <= min <= max")
    return low, high


def simulated_llm_call(
    ctx: TaskContext, prompt: str, seconds: float, *, give_up_on_stop: bool
) -> str:
    """Stand-in for a model call: takes ``seconds``, returns a deterministic answer.

    Given up at once with the SDK's own exception: :class:`FencedError` if the attempt is fenced
    or moved, :class:`TaskReleased` if the agent is stopping and ``give_up_on_stop`` is set.
    """
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        ctx.raise_if_fenced()
        if give_up_on_stop:
            ctx.raise_if_stopping()
        time.sleep(min(0.01, left))  # the call's duration, cut in slices to notice a stop
    return answer(prompt)


def answer(prompt: str) -> str:
    """The simulated model's answer to ``prompt``: a short digest of it."""
    return hashlib.sha256(prompt.encode()).hexdigest()[:12]


def step_prompt(task_id: str, step: int, previous: str) -> str:
    """The prompt of ``step``: the task, the step and the previous step's output ("" at first)."""
    return f"{task_id}:{step}:{previous}"


def step_digest(task_id: str, step: int, previous: str) -> str:
    """The output ``step`` of ``task_id`` has when it starts from ``previous`` (a step's output)."""
    return answer(step_prompt(task_id, step, previous))


def _payload(ctx: TaskContext) -> dict[str, Any]:
    return ctx.task.payload if isinstance(ctx.task.payload, dict) else {}


def make_handler(
    results: Producer | None,
    topic: str,
    step_range: tuple[float, float],
    *,
    give_up_on_stop: bool = True,
    ledger: StepLog | None = None,
) -> Any:
    """The task handler for both task types (see the module docstring).

    With a ``ledger``, every step is recorded there after its output and before its checkpoint.
    """

    def checkpoints(ctx: TaskContext) -> dict[str, Any]:
        payload = _payload(ctx)
        n = int(payload.get("n", 100))
        state = {"blob": "x" * int(payload.get("state_bytes", 200))}
        latencies = []
        for i in range(n):
            started = time.perf_counter()
            ctx.checkpoint(i, state)
            latencies.append(time.perf_counter() - started)
        out = payload.get("out")
        if out:
            # Written aside and renamed: whoever waits for the file never reads half of it.
            partial = Path(f"{out}.partial")
            partial.write_bytes(orjson.dumps(latencies))
            partial.replace(out)
        return {"n": n}

    def steps(ctx: TaskContext) -> dict[str, Any]:
        total = int(_payload(ctx).get("steps", 10))
        state: dict[str, Any] = ctx.state if isinstance(ctx.state, dict) else {"digest": ""}
        for step in range(ctx.next_step, total):
            started = time.time()
            output = simulated_llm_call(
                ctx,
                step_prompt(ctx.task.task_id, step, state["digest"]),
                random.uniform(*step_range),
                give_up_on_stop=give_up_on_stop,
            )
            ctx.guard()  # the step's side effect comes next: only while this attempt may act
            if results is not None:
                result = StepResult(
                    task_id=ctx.task.task_id,
                    attempt=ctx.attempt,
                    step=step,
                    agent_id=ctx.agent_id,
                    epoch=ctx.epoch,
                    output=output,
                    at=started,
                )
                results.produce(topic, key=ctx.task.task_id.encode(), value=result.encode())
                results.flush(10)  # the result is durable before the step's checkpoint
            if ledger is not None:
                ledger.record(
                    task_id=ctx.task.task_id,
                    attempt=ctx.attempt,
                    agent_id=ctx.agent_id,
                    epoch=ctx.epoch,
                    step=step,
                    digest=output,
                )
            state = {"digest": output}
            ctx.progress(step, state)
        return {"digest": state["digest"], "steps": total}

    def handle(ctx: TaskContext) -> dict[str, Any]:
        if ctx.task.task_type == CHECKPOINT_TASK:
            return checkpoints(ctx)
        return steps(ctx)

    return handle


def main() -> int:
    """Run one agent until SIGTERM; exit code 2 on bad configuration, 1 if the agent failed."""
    try:
        setup_logging()
        config = AgentConfig.from_env()
        step_range = step_seconds_from_env()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ledger_dir = os.environ.get(LEDGER_DIR_ENV, "")
    try:
        ledger = StepLog(Path(ledger_dir), config.agent_id) if ledger_dir else None
    except OSError as exc:
        print(f"error: {LEDGER_DIR_ENV}={ledger_dir!r}: {exc}", file=sys.stderr)
        return 2
    topic = os.environ.get("AGENT_FAILOVER_DEMO_RESULTS_TOPIC", "")
    if not topic:
        log.info("AGENT_FAILOVER_DEMO_RESULTS_TOPIC is not set: step results are not written")
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
    handler = make_handler(
        results, topic, step_range, give_up_on_stop=config.handoff_wait == 0, ledger=ledger
    )
    try:
        with Agent(config, handler) as agent:
            agent.run()
    except AgentFailoverError as exc:
        log.error("agent stopped: %s", exc)
        return 1
    finally:
        if results is not None:
            results.flush(10)
        if ledger is not None:
            ledger.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
