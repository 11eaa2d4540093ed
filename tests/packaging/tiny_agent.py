"""The smallest agent, written the way the README shows: run by the installed-wheel test with the
interpreter of a fresh environment holding only ``pip install agent-failover``."""

from __future__ import annotations

import sys
from typing import Any

from agent_failover import Agent, AgentConfig, TaskContext
from agent_failover.logs import setup_logging


def handle(ctx: TaskContext) -> dict[str, Any]:
    ctx.progress(0, {"seen": ctx.task.payload})  # a durable checkpoint, then the result
    return {"echo": ctx.task.payload}


def main() -> int:
    setup_logging()
    with Agent(AgentConfig.from_env(), handle) as agent:
        agent.run()  # until SIGTERM
    return 0


if __name__ == "__main__":
    sys.exit(main())
