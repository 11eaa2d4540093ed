"""``run_monitor(config)``: one monitor worker in this process (``agent-failover monitor``).

Also ``python -m streams.runner`` with the configuration from the environment.
"""

from __future__ import annotations

import logging
import sys

import faust

from agent_failover.config import MonitorConfig
from agent_failover.topics import ensure_topics
from streams.app import build_app

log = logging.getLogger(__name__)


def run_monitor(config: MonitorConfig, *, loglevel: str = "INFO") -> int:
    """Run a faust worker until SIGTERM / SIGINT; returns the process exit code."""
    # Idempotent: a monitor started before `agent-failover topics create` still finds its topics.
    ensure_topics(config.kafka, config.topics)
    app, _, liveness = build_app(config)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        liveness.stop()
    return 0


def main() -> None:
    """Entry point of ``python -m streams.runner``."""
    sys.exit(run_monitor(MonitorConfig.from_env()))


if __name__ == "__main__":
    main()
