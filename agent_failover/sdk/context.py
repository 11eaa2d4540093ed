"""What a task handler sees: :class:`TaskContext`, and :func:`current_task` to find it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import enum
import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol

import orjson

from agent_failover.config import CheckpointPolicy
from agent_failover.errors import (
    CodecError,
    FencedError,
    LifecycleError,
    TaskReleased,
)
from agent_failover.models import JSON, Checkpoint, CheckpointRef, Task
from agent_failover.sdk.checkpoint import ProgressGate
from agent_failover.sdk.kafka import Delivered, DeliveryFuture, wait_delivered

_current: contextvars.ContextVar[TaskContext] = contextvars.ContextVar("agent_failover_task")


def current_task() -> TaskContext:
    """The :class:`TaskContext` of the task running in this thread or asyncio task.

    Raises :class:`LifecycleError` outside a task handler.
    """
    try:
        return _current.get()
    except LookupError:
        raise LifecycleError("current_task() called outside a task handler") from None


class Outcome(enum.Enum):
    """How an attempt ended, as far as this agent is concerned; set once."""

    COMPLETED = "completed"
    FAILED = "failed"
    RELEASED = "released"
    FENCED = "fenced"  # the epoch was fenced: write nothing more
    MOVED = "moved"  # a monitor decision gave the task to a newer attempt: write nothing more


class CheckpointSink(Protocol):
    """Where a context writes (the agent core, or an in-memory double in tests)."""

    def send_checkpoint(self, task_id: str, value: bytes) -> DeliveryFuture:
        """Queue a checkpoint record; the future resolves once the broker has it."""
        ...

    def checkpointed(self, ctx: TaskContext, ref: CheckpointRef) -> None:
        """Report a confirmed checkpoint (a task event); must not block."""
        ...


class Gate(Protocol):
    """What a context asks the agent before a side effect: may this epoch act now?"""

    def lease_valid(self) -> bool:
        """True while the monitor cannot have fenced the epoch unseen (docs: the lease)."""
        ...

    def wait_lease(self, ctx: TaskContext, timeout: float | None) -> bool:
        """Block until the lease is valid (True), ``ctx`` ended, or ``timeout`` passed (False)."""
        ...

    def wake(self) -> None:
        """Wake every :meth:`wait_lease` (a context ended)."""
        ...


class OpenGate:
    """A gate that is always open: contexts built without an agent (handler tests)."""

    def lease_valid(self) -> bool:
        return True

    def wait_lease(self, ctx: TaskContext, timeout: float | None) -> bool:
        return True

    def wake(self) -> None:
        pass


#: How often a wait for an acknowledgement looks whether its attempt ended meanwhile.
_DELIVERY_SLICE_S = 0.2


class TaskContext:
    """One attempt of one task, as its handler sees it.

    Built by the agent; handlers receive it as their argument (or via :func:`current_task`).
    ``checkpoint``/``progress`` block until the broker confirms; in ``async`` handlers use
    ``acheckpoint``/``aprogress`` so the event loop keeps running. Call :meth:`guard` (or
    :meth:`aguard`) right before every side effect a step has outside Kafka.
    """

    def __init__(
        self,
        *,
        task: Task,
        attempt: int,
        agent_id: str,
        epoch: int,
        sink: CheckpointSink,
        policy: CheckpointPolicy,
        resume: Checkpoint | None = None,
        resume_ref: CheckpointRef | None = None,
        clock: Callable[[], float] = time.monotonic,
        gate: Gate | None = None,
    ) -> None:
        self.task = task
        self.attempt = attempt
        self.agent_id = agent_id
        self.epoch = epoch
        self.resume = resume
        # The resume point the redispatch named: what a release reports if this attempt wrote
        # nothing new (the next attempt must not start further back than this one did).
        self._resume_ref = resume_ref if resume is not None else None
        self._sink = sink
        self._progress_gate = ProgressGate(policy, clock)
        self._gate: Gate = gate if gate is not None else OpenGate()
        self._lease_lost = False  # the handler gave up waiting for the lease (guard's timeout)
        self._lock = threading.Lock()
        self._last: CheckpointRef | None = None
        self._pending: tuple[int, JSON] | None = None
        self._stopping = threading.Event()
        self._outcome: Outcome | None = None
        self._done = threading.Event()

    def __repr__(self) -> str:
        return f"<TaskContext task_id={self.task_id!r} attempt={self.attempt}>"

    # --- what the handler reads -----------------------------------------------------------

    @property
    def task_id(self) -> str:
        """The task's id."""
        return self.task.task_id

    @property
    def next_step(self) -> int:
        """The first step to run: one past the resumed checkpoint's step, else 0."""
        return self.resume.step + 1 if self.resume is not None else 0

    @property
    def state(self) -> JSON:
        """The resumed checkpoint's state, or None when starting from the beginning."""
        return self.resume.state if self.resume is not None else None

    @property
    def last_checkpoint(self) -> CheckpointRef | None:
        """Where this attempt's latest confirmed checkpoint lies (None before the first)."""
        with self._lock:
            return self._last

    @property
    def fenced(self) -> bool:
        """True once this agent's epoch is fenced or the task was moved to a newer attempt."""
        return self._outcome in (Outcome.FENCED, Outcome.MOVED)

    @property
    def stopping(self) -> bool:
        """True once the handler should stop: shutdown, fencing, or the task was moved away."""
        return self._stopping.is_set()

    def raise_if_fenced(self) -> None:
        """Raise :class:`FencedError` if this attempt may no longer write."""
        if self.fenced:
            raise FencedError(
                f"task {self.task_id} attempt {self.attempt} is fenced", task_id=self.task_id
            )

    def raise_if_stopping(self) -> None:
        """Raise :class:`FencedError` if fenced, :class:`TaskReleased` if the agent is stopping."""
        self.raise_if_fenced()
        if self.stopping:
            raise TaskReleased(
                f"task {self.task_id} released: agent stopping", task_id=self.task_id
            )

    # --- before a side effect ---------------------------------------------------------------

    def guard(self, timeout: float | None = None) -> None:
        """Call right before a side effect (an API call, a write outside Kafka): returns only if
        this attempt may still act.

        Raises :class:`FencedError` if the epoch was fenced or the task moved to a newer
        attempt, :class:`TaskReleased` if the agent is stopping and has released the task.
        While the agent stops but has not released the task yet (its handoff wait), the step in
        flight may finish: ``guard()`` passes, and the step's ``progress()`` checkpoints it and
        then raises :class:`TaskReleased`, so no new step starts.

        When the agent's lease is not valid (no heartbeat acknowledged lately: the broker is
        unreachable, or this process was paused), the monitor may have fenced the epoch without
        the agent knowing yet: ``guard()`` then waits until the lease is renewed and the agent
        has read its control partition to the end, and raises if a fence was there. It waits
        as long as the agent is otherwise healthy (a broker outage pauses the step, it does not
        fail it), or at most ``timeout`` seconds: then it raises :class:`FencedError` and the
        agent hands the task back.
        """
        self._check_writable()
        if self._gate.lease_valid():
            return
        if not self._gate.wait_lease(self, timeout):
            self._check_writable()
            self._lost_lease(timeout)
        self._check_writable()

    async def aguard(self, timeout: float | None = None) -> None:
        """:meth:`guard` for async handlers: waits without blocking the event loop."""
        self._check_writable()
        if self._gate.lease_valid():
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            # Short waits in a thread: a cancelled handler leaves no thread waiting for long.
            if left > 0 and await asyncio.to_thread(self._gate.wait_lease, self, left):
                break
            self._check_writable()
            if deadline is not None and time.monotonic() >= deadline:
                self._lost_lease(timeout)
        self._check_writable()

    def _lost_lease(self, timeout: float | None) -> None:
        self._lease_lost = True
        raise FencedError(
            f"task {self.task_id} attempt {self.attempt}: the agent's lease was not renewed "
            f"within {timeout:g} s (broker unreachable?); handing the task back",
            task_id=self.task_id,
        )

    # --- writing progress -------------------------------------------------------------------

    def checkpoint(self, step: int, state: JSON) -> int:
        """Write a durable checkpoint of ``step`` and return its offset in the checkpoints topic.

        Blocks until the broker confirms (idempotent producer, ``acks=all``), then reports a
        ``checkpointed`` event without waiting. Raises :class:`FencedError` if this attempt is
        fenced, :class:`TaskReleased` (after writing) if the agent is stopping,
        :class:`CodecError` if ``step`` is not an int >= 0 or ``state`` is not JSON,
        :class:`BrokerError` if the write fails for good (retrying cannot cure it).

        Checks what :meth:`guard` checks before writing, and waits like it: through a broker
        outage the checkpoint (and so the task) pauses until the broker answers again.
        """
        self._check_step(step)
        self.guard()
        future = self._send(step, state)
        return self._confirmed(step, self._delivered(future))

    async def acheckpoint(self, step: int, state: JSON) -> int:
        """``checkpoint()`` for async handlers: awaits the broker's confirmation."""
        self._check_step(step)
        await self.aguard()
        future = self._send(step, state)
        # Shielded: cancelling this await must not cancel the write's future, which the
        # producer's delivery thread resolves later (set_result on a cancelled one raises there).
        waiting = asyncio.shield(asyncio.wrap_future(future))
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=_DELIVERY_SLICE_S)
            if done:
                return self._confirmed(step, waiting.result())
            self._check_ended()

    def progress(self, step: int, state: JSON) -> int | None:
        """Report progress; writes a checkpoint when the policy says so (returns its offset).

        Every step, at most every N seconds, or never (on demand) per the agent's
        ``CheckpointPolicy``. Unwritten progress is still written when the agent stops. Raises
        as :meth:`checkpoint` does (``step`` is checked even when nothing is written).
        """
        if self._note_progress(step, state):
            return self.checkpoint(step, state)
        return None

    async def aprogress(self, step: int, state: JSON) -> int | None:
        """``progress()`` for async handlers."""
        if self._note_progress(step, state):
            return await self.acheckpoint(step, state)
        return None

    # --- internals shared with the agent core ----------------------------------------------

    def _note_progress(self, step: int, state: JSON) -> bool:
        self._check_writable()
        self._check_step(step)  # now, not when the agent stops and writes it
        with self._lock:
            self._pending = (step, state)
        return self.stopping or self._progress_gate.should_write()

    def _check_writable(self) -> None:
        outcome = self._outcome
        if outcome in (Outcome.FENCED, Outcome.MOVED):
            self.raise_if_fenced()
        if outcome is Outcome.RELEASED:
            raise TaskReleased(f"task {self.task_id} was released", task_id=self.task_id)
        if outcome is not None:
            raise LifecycleError(f"task {self.task_id} already {outcome.value}")

    def _delivered(self, future: DeliveryFuture) -> Delivered:
        """The write's acknowledgement, however long the broker takes, unless the attempt ends
        meanwhile (fenced, moved, released: then the write is off the task's chain anyway)."""
        while True:
            try:
                return future.result(timeout=_DELIVERY_SLICE_S)
            except concurrent.futures.TimeoutError:
                self._check_ended()

    def _check_ended(self) -> None:
        """Raise if the attempt ended (fenced, moved or released) while a write was waiting."""
        if self._outcome in (Outcome.FENCED, Outcome.MOVED, Outcome.RELEASED):
            self._check_writable()

    def _check_step(self, step: int) -> None:
        # A step the schema refuses would be written, then rejected by the attempt resuming it.
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise CodecError(
                f"checkpoint of task {self.task_id}: step must be an int >= 0, got {step!r}",
                record_type=Checkpoint.RECORD_TYPE,
            )

    def _send(self, step: int, state: JSON) -> DeliveryFuture:
        self._check_step(step)
        self._check_writable()
        record = Checkpoint(
            task_id=self.task_id,
            attempt=self.attempt,
            agent_id=self.agent_id,
            epoch=self.epoch,
            step=step,
            state=state,
            written_at=time.time(),
        )
        try:
            # Record.to_dict() drops None fields, but "state" is required (null is a valid
            # state): put it back, or readers would reject the record.
            value = orjson.dumps({**record.to_dict(), "state": state})
        except TypeError as exc:  # orjson's error for values that are not JSON
            raise CodecError(f"checkpoint state of task {self.task_id} is not JSON: {exc}") from exc
        return self._sink.send_checkpoint(self.task_id, value)

    def _confirmed(self, step: int, delivered: Delivered) -> int:
        ref = CheckpointRef(
            partition=delivered.partition,
            offset=delivered.offset,
            step=step,
            task_id=self.task_id,
            attempt=self.attempt,
            epoch=self.epoch,
        )
        with self._lock:
            self._last = ref
            if self._pending is not None and self._pending[0] <= step:
                self._pending = None
            self._progress_gate.written()
            # A write that raced a fence or release still landed, but it is off the task's chain:
            # say nothing about it and tell the handler.
            if self._outcome is None:
                self._sink.checkpointed(self, ref)
        self._check_writable()
        if self.stopping:
            raise TaskReleased(
                f"task {self.task_id} released: agent stopping", task_id=self.task_id
            )
        return delivered.offset

    def _settle(self, outcome: Outcome) -> bool:
        """Set the attempt's outcome once; False if it already had one."""
        with self._lock:
            if self._outcome is not None:
                return False
            self._outcome = outcome
        if outcome in (Outcome.FENCED, Outcome.MOVED):
            self._stopping.set()
        self._gate.wake()  # a guard waiting for the lease must see the end now
        return True

    def _request_stop(self) -> None:
        self._stopping.set()

    def _write_final(self, timeout: float) -> None:
        """Write progress not yet covered by a checkpoint (graceful stop), blocking up to
        ``timeout`` seconds for the acknowledgement."""
        pending = self._unwritten_progress()
        if pending is None:
            return
        step, state = pending
        future = self._send(step, state)
        delivered = wait_delivered(
            future, f"final checkpoint of task {self.task_id}", timeout=timeout
        )
        with contextlib.suppress(TaskReleased):
            self._confirmed(step, delivered)

    def _unwritten_progress(self) -> tuple[int, JSON] | None:
        """Progress reported but not yet covered by a checkpoint (for the final checkpoint)."""
        with self._lock:
            pending = self._pending
            if pending is None or (self._last is not None and pending[0] <= self._last.step):
                return None
            return pending

    def _release_ref(self) -> CheckpointRef | None:
        """The checkpoint a release reports: this attempt's last, else the one it resumed from."""
        with self._lock:
            return self._last if self._last is not None else self._resume_ref

    @contextlib.contextmanager
    def _bound(self) -> Iterator[TaskContext]:
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)
