"""What a task handler sees: :class:`TaskContext`, and :func:`current_task` to find it."""

from __future__ import annotations

import asyncio
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
    BrokerError,
    CodecError,
    FencedError,
    LifecycleError,
    TaskReleased,
)
from agent_failover.models import JSON, Checkpoint, CheckpointRef, Task
from agent_failover.sdk.checkpoint import ProgressGate
from agent_failover.sdk.kafka import DELIVERY_WAIT_S, Delivered, DeliveryFuture, wait_delivered

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


class TaskContext:
    """One attempt of one task, as its handler sees it.

    Built by the agent; handlers receive it as their argument (or via :func:`current_task`).
    ``checkpoint``/``progress`` block until the broker confirms; in ``async`` handlers use
    ``acheckpoint``/``aprogress`` so the event loop keeps running.
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
        self._gate = ProgressGate(policy, clock)
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

    # --- writing progress -------------------------------------------------------------------

    def checkpoint(self, step: int, state: JSON) -> int:
        """Write a durable checkpoint of ``step`` and return its offset in the checkpoints topic.

        Blocks until the broker confirms (idempotent producer, ``acks=all``), then reports a
        ``checkpointed`` event without waiting. Raises :class:`FencedError` if this attempt is
        fenced, :class:`TaskReleased` (after writing) if the agent is stopping,
        :class:`CodecError` if ``step`` is not an int >= 0 or ``state`` is not JSON,
        :class:`BrokerError` if the write fails.
        """
        future = self._send(step, state)
        return self._confirmed(step, wait_delivered(future, f"checkpoint of task {self.task_id}"))

    async def acheckpoint(self, step: int, state: JSON) -> int:
        """``checkpoint()`` for async handlers: awaits the broker's confirmation."""
        future = self._send(step, state)
        # Shielded: cancelling this await must not cancel the write's future, which the
        # producer's delivery thread resolves later (set_result on a cancelled one raises there).
        try:
            delivered = await asyncio.wait_for(
                asyncio.shield(asyncio.wrap_future(future)), DELIVERY_WAIT_S
            )
        except TimeoutError as exc:
            raise BrokerError(f"checkpoint of task {self.task_id}: no acknowledgement") from exc
        return self._confirmed(step, delivered)

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
        return self.stopping or self._gate.should_write()

    def _check_writable(self) -> None:
        outcome = self._outcome
        if outcome in (Outcome.FENCED, Outcome.MOVED):
            self.raise_if_fenced()
        if outcome is Outcome.RELEASED:
            raise TaskReleased(f"task {self.task_id} was released", task_id=self.task_id)
        if outcome is not None:
            raise LifecycleError(f"task {self.task_id} already {outcome.value}")

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
            self._gate.written()
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
        return True

    def _request_stop(self) -> None:
        self._stopping.set()

    def _write_final(self) -> None:
        """Write progress not yet covered by a checkpoint (graceful stop), blocking."""
        pending = self._unwritten_progress()
        if pending is None:
            return
        step, state = pending
        future = self._send(step, state)
        delivered = wait_delivered(future, f"final checkpoint of task {self.task_id}")
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
