"""The synchronous front: :class:`Agent` runs each task's handler in its own thread."""

from __future__ import annotations

import inspect
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any, Self

from agent_failover.config import AgentConfig
from agent_failover.errors import LifecycleError
from agent_failover.sdk.context import TaskContext
from agent_failover.sdk.core import AgentCore, State
from agent_failover.sdk.front import AgentFront
from agent_failover.sdk.transport import Transport

log = logging.getLogger(__name__)

Handler = Callable[[TaskContext], Any]

#: Signals that ask an agent to stop gracefully.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def signals_wanted(handle_signals: bool | None) -> bool:
    """Whether ``run()`` installs signal handlers: by default only on the main thread.

    Raises :class:`LifecycleError` if asked to off the main thread, where Python cannot.
    """
    main = threading.current_thread() is threading.main_thread()
    if handle_signals and not main:
        raise LifecycleError("handle_signals=True needs the main thread (signals go only there)")
    return main if handle_signals is None else handle_signals


class Agent(AgentFront):
    """An agent process's connection to agent-failover, for synchronous handlers.

    ``handler(ctx)`` runs once per task attempt, in a thread of its own (at most ``capacity`` at a
    time). Returning means completed, and what it returns (JSON, at most 256 KiB) is the task's
    result; raising means failed (not retried), except :class:`TaskReleased` (hand the task
    back) and :class:`FencedError` (it was taken away).

    Nothing touches the network before :meth:`start` (or ``with``)::

        with Agent(AgentConfig.from_env(), handler) as agent:
            agent.run()  # until SIGTERM / SIGINT / stop()

    ``transport`` is Kafka unless given: tests pass a
    :class:`~agent_failover.sdk.testing.MemoryTransport` to run the agent without a broker.
    """

    def __init__(
        self, config: AgentConfig, handler: Handler, *, transport: Transport | None = None
    ) -> None:
        if inspect.iscoroutinefunction(handler):
            raise TypeError("handler is a coroutine function: use AsyncAgent")
        self._handler = handler
        self._core = AgentCore(config, self._launch, transport)

    def start(self) -> Self:
        """Connect, announce this epoch and start taking tasks (in background threads).

        Raises :class:`BrokerError` if the broker cannot be reached, :class:`LifecycleError` if
        already started or closed.
        """
        self._core.start()
        return self

    def run(self, *, handle_signals: bool | None = None) -> None:
        """Start if needed, block until :meth:`stop`, SIGTERM/SIGINT or fencing, then close.

        Signal handlers are installed only if ``handle_signals`` (default: when called on the
        main thread) and restored afterwards. Raises :class:`FencedError` if the monitor fenced
        this epoch (restart the process to work again); the error that stopped a background
        thread (:class:`BrokerError`, or :class:`InternalError` for a bug); :class:`LifecycleError`
        if the agent is closed, or ``handle_signals=True`` off the main thread.
        """
        handle_signals = signals_wanted(handle_signals)
        if self._core.state is State.NEW:
            self.start()
        elif self._core.state is not State.RUNNING:
            raise LifecycleError("the agent is closed")
        try:
            with self._signals(handle_signals):
                # A timed wait keeps the main thread responsive to signals.
                while not self._core.stop_requested.wait(0.5):
                    pass
        finally:
            self.close()
        self._core.raise_for_outcome()

    def stop(self) -> None:
        """Ask :meth:`run` to return (thread- and signal-safe); does not block."""
        self._core.request_stop()

    def close(self) -> None:
        """Graceful stop: release in-flight tasks (after ``handoff_wait``), leave.

        Idempotent; the agent cannot be started again.
        """
        self._core.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _signals(self, install: bool) -> Iterator[None]:
        if not install:
            yield
            return

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s: stopping", signal.Signals(signum).name)
            self._core.request_stop()

        previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            # Restored before close(): a second Ctrl-C interrupts a slow shutdown.
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _launch(self, ctx: TaskContext) -> None:
        thread = threading.Thread(
            target=self._run_task, args=(ctx,), name=f"af-task-{ctx.task_id}", daemon=True
        )
        thread.start()

    def _run_task(self, ctx: TaskContext) -> None:
        error: BaseException | None = None
        result = None
        try:
            admitted = self._core.admit(ctx, None)  # never a handler after a fence
            if isinstance(admitted, BaseException):
                error = admitted
            else:
                with ctx._bound():
                    result = self._handler(ctx)
        except BaseException as exc:  # even SystemExit in a handler must free its slot
            error = exc
        self._core.task_done(ctx, error, result)
