"""``run_monitor(config)``: one monitor worker in this process (``agent-failover monitor``).

Also ``python -m agent_failover.streams.runner`` with the configuration from the environment.

Logging is the process's (:func:`agent_failover.logs.setup_logging`, called by the command line
and by ``main`` here): the faust worker is told not to configure its own, which would reset the
level to its default and replace the format.

A stop is bounded (:data:`STOP_TIMEOUT`): with the broker gone, faust's stop waits forever to
flush its producer. Past the bound the process exits at once, like a crash: nothing the monitor
decided counts before the broker acknowledged it, and the worker that takes over recomputes the
rest from the topics. A second SIGINT or SIGTERM during a stop exits at once too.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

import faust

from agent_failover.config import MonitorConfig
from agent_failover.logs import setup_logging
from agent_failover.streams.app import build_app
from agent_failover.topics import ensure_topics

log = logging.getLogger(__name__)

#: Seconds a stop may take before the process exits without finishing it (below the chart's
#: default grace period of 30 s, so the exit is ours, not a SIGKILL's).
STOP_TIMEOUT = 20.0
#: The exit code of a stop that did not finish.
EXIT_STOP_TIMEOUT = 1


def _exit_now(why: str) -> None:
    log.error(
        "%s: exiting without finishing the stop (as after a crash; the next worker "
        "recomputes what was not written)",
        why,
    )
    logging.shutdown()
    os._exit(EXIT_STOP_TIMEOUT)


class _Worker(faust.Worker):
    """faust's worker, with a bounded stop."""

    stop_timeout = STOP_TIMEOUT
    _stop_timer: threading.Timer | None = None

    async def on_stop(self) -> None:
        # The first thing a stop runs, whatever started it (a signal, a crash of the app).
        timer = threading.Timer(
            self.stop_timeout,
            _exit_now,
            (f"the stop did not finish within {self.stop_timeout:g} s (is the broker reachable?)",),
        )
        timer.daemon = True
        timer.start()
        self._stop_timer = timer
        await super().on_stop()

    def _schedule_shutdown(self, sig: signal.Signals) -> None:
        # mode ignores a signal while stopping; a user pressing Ctrl-C twice means "now".
        if self._signal_stop_time:
            _exit_now(f"{sig.name} again during the stop")
        super()._schedule_shutdown(sig)

    def cancel_stop_timer(self) -> None:
        """The stop finished (or never began): no exit is due."""
        if self._stop_timer is not None:
            self._stop_timer.cancel()


def run_monitor(config: MonitorConfig) -> int:
    """Run a faust worker until SIGTERM / SIGINT; returns the process exit code.

    Logs through the logging the process set up (:func:`~agent_failover.logs.setup_logging`).
    """
    # Idempotent: a monitor started before `agent-failover topics` still finds its topics.
    ensure_topics(config.kafka, config.topics)
    app, _, liveness = build_app(config)
    worker = _Worker(app, loglevel=logging.getLogger().level, quiet=True, override_logging=False)
    worker.spinner = None  # a terminal progress spinner; "Ready" is logged instead
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        worker.cancel_stop_timer()
        liveness.stop()
    return 0


def main() -> None:
    """Entry point of ``python -m agent_failover.streams.runner``."""
    setup_logging()
    sys.exit(run_monitor(MonitorConfig.from_env()))


if __name__ == "__main__":
    main()
