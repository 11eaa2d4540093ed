"""Admission: whether a handler may start, and whether a guarded step may act, now.

Nothing starts and no guarded step acts while the lease is not valid: the monitor may have
fenced the epoch without the agent having read the fence yet (:mod:`agent_failover.sdk.lease`).
:class:`Admission` is the :class:`~agent_failover.sdk.context.Gate` of every task context and the
last check before a handler runs, made in the thread or task that runs it.
"""

from __future__ import annotations

from agent_failover.errors import FencedError, TaskReleased
from agent_failover.sdk.context import Outcome, TaskContext
from agent_failover.sdk.holdings import Holdings
from agent_failover.sdk.lease import Lease


class Admission:
    """The lease and the fence of one epoch, as handlers and guarded steps see them."""

    def __init__(self, holdings: Holdings, lease: Lease) -> None:
        self._holdings = holdings
        self._lease = lease

    # Gate, for TaskContext.guard()
    def lease_valid(self) -> bool:
        """True while the monitor cannot have fenced this epoch unseen."""
        return self._holdings.fence is None and self._lease.valid()

    def wait_lease(self, ctx: TaskContext, timeout: float | None) -> bool:
        """Block until the lease is valid, ``ctx`` ended or the epoch is fenced, at most
        ``timeout`` seconds; True if the lease is valid."""
        valid = self._lease.wait(
            lambda: ctx._outcome is not None or self._holdings.fence is not None, timeout
        )
        return valid and self._holdings.fence is None

    def wake(self) -> None:
        """Wake the guards waiting for the lease (a context ended)."""
        self._lease.wake()

    def admit(self, ctx: TaskContext, timeout: float | None) -> bool | BaseException:
        """Right before ``ctx``'s handler starts (in the thread or task that runs it): True to
        start it; an exception to end it without running (fenced, moved or released while it
        was being launched); False if the lease is still not valid after ``timeout`` seconds.

        The check is made under the holdings' lock, so a fence applied before it is never
        missed; a handler is never started while the lease is not valid.
        """
        holdings = self._holdings
        while True:
            with holdings.lock:
                if ctx._outcome is not None or holdings.fence is not None:
                    if ctx._outcome is Outcome.RELEASED:
                        return TaskReleased(f"task {ctx.task_id} released", task_id=ctx.task_id)
                    return FencedError(
                        f"task {ctx.task_id} attempt {ctx.attempt} is fenced", task_id=ctx.task_id
                    )
                if self._lease.valid():
                    return True
            if not self.wait_lease(ctx, timeout) and timeout is not None:
                with holdings.lock:
                    if ctx._outcome is None and holdings.fence is None:
                        return False
