"""The tasks one agent epoch holds, and the fence that ends them, all under one lock.

Several parts of the core act on the same few facts: the listener queues dispatches and applies
fences and moves (:mod:`agent_failover.sdk.control`), the starter takes slots and starts tasks
(:mod:`agent_failover.sdk.tasks`), the fronts' threads admit handlers
(:mod:`agent_failover.sdk.admission`) and the graceful stop releases what is left
(:mod:`agent_failover.sdk.handoff`). :class:`Holdings` keeps those facts in one place, guarded by
one lock, so that each decision sees them consistent: a fence applied under the lock is never
missed by a handler admitted after it.
"""

from __future__ import annotations

import threading
import time

from agent_failover.models import Control
from agent_failover.sdk.context import TaskContext
from agent_failover.sdk.intake import WorkQueue


class Holdings:
    """Running tasks, the slots being started, queued dispatches, moved attempts and the fence.

    The attributes are read and changed only with :attr:`lock` held (the methods take it).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.lock = threading.Lock()
        #: Notified when work is queued, a slot frees or the lease is renewed: the starter waits
        #: on it for queued work and a free slot, the graceful stop for handlers to end.
        self.changed = threading.Condition(self.lock)
        self.running: dict[tuple[str, int], TaskContext] = {}
        #: Slots held by tasks being started (their checkpoint is read outside the lock).
        self.starting = 0
        self.queue = WorkQueue()
        self.moved: dict[str, int] = {}  # task id -> highest attempt a plan gave it
        #: The monitor's fence of this epoch, once read (the first one counts).
        self.fence: Control | None = None

    def held(self) -> dict[str, int]:
        """Task id -> attempt of every task held (running or queued)."""
        with self.lock:
            out = {rd.task_id: rd.attempt for rd in self.queue}
            for task_id, attempt in self.running:
                out[task_id] = max(attempt, out.get(task_id, 0))
            return out

    def running_now(self) -> list[TaskContext]:
        """The contexts of the tasks running now."""
        with self.lock:
            return list(self.running.values())

    def has_room_locked(self) -> bool:
        """True if a slot is free (lock held)."""
        return len(self.running) + self.starting < self.capacity

    def wake(self) -> None:
        """Tell the waiters on :attr:`changed` that something changed."""
        with self.lock:
            self.changed.notify_all()

    def wait_idle(self, seconds: float) -> None:
        """Wait until no task runs, at most ``seconds``."""
        deadline = time.monotonic() + seconds
        with self.lock:
            while self.running and (left := deadline - time.monotonic()) > 0:
                self.changed.wait(left)
