"""The asyncio front: :class:`AsyncAgent` runs each task's coroutine handler on the event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

from agent_failover.config import AgentConfig
from agent_failover.errors import LifecycleError, TaskReleased
from agent_failover.sdk.agent import STOP_SIGNALS, signals_wanted
from agent_failover.sdk.context import TaskContext
from agent_failover.sdk.core import AgentCore, State
from agent_failover.sdk.front import AgentFront
from agent_failover.sdk.transport import Transport

log = logging.getLogger(__name__)

AsyncHandler = Callable[[TaskContext], Awaitable[Any]]


class AsyncAgent(AgentFront):
    """:class:`~agent_failover.sdk.Agent` for ``async def`` handlers; same contract.

    The Kafka clients and their threads are the same core as the synchronous agent's; handlers
    run as asyncio tasks on the loop that started the agent. In handlers, prefer
    ``await ctx.acheckpoint(...)`` / ``await ctx.aprogress(...)`` (they do not block the loop)::

        async with AsyncAgent(config, handler) as agent:
            await agent.run()

    ``transport`` as for :class:`~agent_failover.sdk.Agent`.
    """

    def __init__(
        self, config: AgentConfig, handler: AsyncHandler, *, transport: Transport | None = None
    ) -> None:
        if not inspect.iscoroutinefunction(handler):
            raise TypeError("handler must be an async def function: use Agent for plain functions")
        self._handler = handler
        self._core = AgentCore(config, self._launch, transport)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()

    async def start(self) -> Self:
        """Connect, announce this epoch and start taking tasks.

        Raises :class:`BrokerError` if the broker cannot be reached, :class:`LifecycleError` if
        already started or closed.
        """
        loop = self._loop = asyncio.get_running_loop()

        def wake() -> None:
            # Called from any thread, possibly as the loop closes: then nobody waits to be woken.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._stop.set)

        self._core.on_stop(wake)
        # Connecting blocks (the agent_started acknowledgement): keep the loop free meanwhile.
        await asyncio.to_thread(self._core.start)
        return self

    async def run(self, *, handle_signals: bool | None = None) -> None:
        """Start if needed, wait for :meth:`stop`, SIGTERM/SIGINT or fencing, then close.

        Raises as :meth:`Agent.run <agent_failover.sdk.Agent.run>` does: :class:`FencedError` if
        the monitor fenced this epoch, the error that stopped a background thread,
        :class:`LifecycleError` if closed or ``handle_signals=True`` off the main thread.
        """
        handle_signals = signals_wanted(handle_signals)
        if self._core.state is State.NEW:
            await self.start()
        elif self._core.state is not State.RUNNING:
            raise LifecycleError("the agent is closed")
        loop = asyncio.get_running_loop()
        installed = []
        if handle_signals:
            for sig in STOP_SIGNALS:
                loop.add_signal_handler(sig, self._on_signal, sig)
                installed.append(sig)
        try:
            await self._stop.wait()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await self.close()
        self._core.raise_for_outcome()

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("received %s: stopping", sig.name)
        self._core.request_stop()

    def stop(self) -> None:
        """Ask :meth:`run` to return (thread-safe); does not block."""
        self._core.request_stop()

    async def close(self) -> None:
        """Graceful stop: release in-flight tasks (after ``handoff_wait``), leave.

        Handlers still running afterwards (their tasks were released) are cancelled.
        """
        await asyncio.to_thread(self._core.close)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _launch(self, ctx: TaskContext) -> None:
        # Called from the core's starter thread.
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._spawn, ctx)

    def _spawn(self, ctx: TaskContext) -> None:
        task = asyncio.create_task(self._run_task(ctx), name=f"af-task-{ctx.task_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_task(self, ctx: TaskContext) -> None:
        error: BaseException | None = None
        result = None
        try:
            # Never a handler after a fence, nor while the lease is not valid: waited for in
            # short slices off the loop.
            admitted = self._core.admit(ctx, 0)
            while admitted is False:
                admitted = await asyncio.to_thread(self._core.admit, ctx, 0.5)
            if isinstance(admitted, BaseException):
                raise admitted
            with ctx._bound():
                result = await self._handler(ctx)
        except asyncio.CancelledError:
            # close() cancels only tasks it already released; anything else cancelled (the loop
            # shutting down) is handed back too, never reported done.
            released = TaskReleased(f"task {ctx.task_id} cancelled", task_id=ctx.task_id)
            reported = self._task_done_off_loop(ctx, released)
            # Wait for the report so that a loop shutting down outlives it; if this wait is
            # cancelled too, the thread still reports the release.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wrap_future(reported)
            raise
        except Exception as exc:
            error = exc
        await asyncio.wrap_future(self._task_done_off_loop(ctx, error, result))

    def _task_done_off_loop(
        self, ctx: TaskContext, error: BaseException | None, result: Any = None
    ) -> concurrent.futures.Future[None]:
        """Run ``task_done`` (it may write a final checkpoint and wait for the broker) in a thread.

        A thread of its own, not the loop's executor: a loop shutting down may have shut its
        executor down already, and the report must not depend on the loop at all. Not a daemon,
        so that the interpreter does not exit in the middle of a release.
        """
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        # Running: cancelling an await on it (wrap_future) then cannot cancel the report itself.
        done.set_running_or_notify_cancel()

        def report() -> None:
            try:
                self._core.task_done(ctx, error, result)
            except BaseException as exc:  # nobody may be waiting any more: say it here
                log.error("task %s: reporting its end failed", ctx.task_id, exc_info=exc)
                done.set_exception(exc)
            else:
                done.set_result(None)

        try:
            threading.Thread(target=report, name=f"af-done-{ctx.task_id}").start()
        except RuntimeError:  # no new thread at interpreter shutdown: report here, blocking
            report()
        return done
