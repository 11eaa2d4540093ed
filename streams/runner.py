"""``run_monitor(config)``: one monitor worker in this process (``agent-failover monitor``).

Also ``python -m streams.runner`` with the configuration from the environment.

Logging is the process's (:func:`agent_failover.logs.setup_logging`, called by the command line
and by ``main`` here): the faust worker is told not to configure its own, which would reset the
level to its default and replace the format.
"""

from __future__ import annotations

import logging
import sys

import faust

from agent_failover.config import MonitorConfig
from agent_failover.logs import setup_logging
from agent_failover.topics import ensure_topics
from streams.app import build_app

log = logging.getLogger(__name__)


def run_monitor(config: MonitorConfig) -> int:
    """Run a faust worker until SIGTERM / SIGINT; returns the process exit code.

    Logs through the logging the process set up (:func:`~agent_failover.logs.setup_logging`).
    """
    # Idempotent: a monitor started before `agent-failover topics` still finds its topics.
    ensure_topics(config.kafka, config.topics)
    app, _, liveness = build_app(config)
    worker = faust.Worker(
        app, loglevel=logging.getLogger().level, quiet=True, override_logging=False
    )
    worker.spinner = None  # a terminal progress spinner; "Ready" is logged instead
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        liveness.stop()
    return 0


def main() -> None:
    """Entry point of ``python -m streams.runner``."""
    setup_logging()
    sys.exit(run_monitor(MonitorConfig.from_env()))


if __name__ == "__main__":
    main()
