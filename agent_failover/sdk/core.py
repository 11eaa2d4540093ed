"""The agent core: one epoch's Kafka clients, threads, task slots and lifecycle.

Both fronts (:class:`~agent_failover.sdk.agent.Agent` and
:class:`~agent_failover.sdk.aio.AsyncAgent`) share this class; it does all the I/O, through the
clients its transport gives it (Kafka unless a test says otherwise,
:mod:`agent_failover.sdk.transport`). A front only supplies ``launch(ctx)`` (run the handler
somewhere, then call :meth:`AgentCore.task_done`).

Threads (all daemons, named ``af-<agent_id>-...``):

* ``delivery``: serves the producer's delivery reports (resolves write futures);
* ``heartbeat``: one heartbeat every ``heartbeat_interval``; each acknowledgement renews the
  lease (:mod:`agent_failover.sdk.lease`);
* ``listener``: own partition of ``control`` and ``tasks.priority``: fences, moves, dispatches;
  after a lapsed lease was renewed, it reads ``control`` to its end before work resumes;
* ``starter``: starts queued dispatches while slots are free and the lease is valid
  (:mod:`agent_failover.sdk.intake`).

Every task reaches the agent as a dispatch from the monitor; there is no consumer group. Nothing
starts and no guarded step acts while the lease is not valid: the monitor may have fenced the
epoch without the agent having read the fence yet.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException

from agent_failover.config import AgentConfig
from agent_failover.errors import (
    AgentFailoverError,
    CodecError,
    ConfigError,
    FencedError,
    InternalError,
    LifecycleError,
    TaskReleased,
)
from agent_failover.models import (
    CheckpointRef,
    Control,
    DispatchReason,
    EventKind,
    Heartbeat,
    Pool,
    Redispatch,
    Task,
    TaskEvent,
    plain_result,
)
from agent_failover.sdk.context import Outcome, TaskContext
from agent_failover.sdk.deadletters import AgentDeadLetters
from agent_failover.sdk.health import AgentStatus, Reachability
from agent_failover.sdk.heartbeat import HeartbeatBuilder, Heartbeater, HeartbeatState
from agent_failover.sdk.intake import (
    Listener,
    RedispatchFilter,
    Starter,
    WorkQueue,
    interpret_control,
)
from agent_failover.sdk.kafka import (
    DeliveryFuture,
    broker_error,
    wait_delivered,
)
from agent_failover.sdk.lease import Lease
from agent_failover.sdk.transport import (
    CheckpointSource,
    KafkaTransport,
    RecordSource,
    RecordWriter,
    Transport,
)

log = logging.getLogger(__name__)

Launch = Callable[[TaskContext], None]

_epoch_lock = threading.Lock()
_last_epoch = 0


def new_epoch() -> int:
    """A fresh epoch: ``time.time_ns()``, strictly increasing within this process."""
    global _last_epoch
    with _epoch_lock:
        _last_epoch = max(time.time_ns(), _last_epoch + 1)
        return _last_epoch


class State(enum.Enum):
    """Lifecycle of a core: no reuse after close."""

    NEW = "new"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


class AgentCore:
    """One agent epoch. Not for direct use: build an ``Agent`` or ``AsyncAgent``."""

    def __init__(
        self, config: AgentConfig, launch: Launch, transport: Transport | None = None
    ) -> None:
        self.config = config
        self._launch = launch
        self._name = f"af-{config.agent_id}"
        self._state = State.NEW
        self._epoch: int | None = None
        self._lock = threading.Lock()
        # The starter waits on it for queued work and a free slot; fronts for handlers to end.
        self._work_changed = threading.Condition(self._lock)
        self._running: dict[tuple[str, int], TaskContext] = {}
        # A slot held by the task being started (its checkpoint is read outside the lock).
        self._starting = 0
        self._queue = WorkQueue()
        self._moved: dict[str, int] = {}  # task id -> highest attempt a plan gave it
        self._pool = Pool(config.pool)
        self._draining = False
        self._fence: Control | None = None
        self._failure: BaseException | None = None
        self._failed_thread = ""
        self._stop_requested = threading.Event()
        self._stop_callbacks: list[Callable[[], None]] = []
        self._closed = threading.Event()
        self._transport = transport or KafkaTransport()
        self._producer: RecordWriter | None = None
        self._listen_consumer: RecordSource | None = None
        self._listener: Listener | None = None
        self._starter: Starter | None = None
        self._heartbeater: Heartbeater | None = None
        self._reader: CheckpointSource | None = None
        self._filter: RedispatchFilter | None = None
        self._lease = Lease(config.heartbeat_timeout, on_change=self._lease_changed)
        self._reach = Reachability(
            config.heartbeat_timeout / 2, config.kafka.bootstrap_servers, self._lease.clock
        )
        self._said_lapsed = False  # the log said the lease ran out, and not yet that it is back

    # --- identity and state -----------------------------------------------------------------

    @property
    def agent_id(self) -> str:
        """This agent's id (from the configuration)."""
        return self.config.agent_id

    @property
    def epoch(self) -> int:
        """This incarnation's epoch; chosen by ``start()``."""
        if self._epoch is None:
            raise LifecycleError("the agent has no epoch before start()")
        return self._epoch

    @property
    def state(self) -> State:
        """The lifecycle state."""
        return self._state

    @property
    def fenced(self) -> bool:
        """True once the monitor fenced this epoch."""
        return self._fence is not None

    @property
    def failure(self) -> BaseException | None:
        """The error that stopped a background thread, if one did."""
        return self._failure

    @property
    def stop_requested(self) -> threading.Event:
        """Set when the agent should stop: ``stop()``, a signal, fencing or a thread failure."""
        return self._stop_requested

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from any thread) once a stop is requested."""
        with self._lock:
            self._stop_callbacks.append(callback)
            already = self._stop_requested.is_set()
        if already:
            callback()

    def request_stop(self) -> None:
        """Ask ``run()`` to return (thread- and signal-safe)."""
        if self._stop_requested.is_set():
            return
        self._stop_requested.set()
        for callback in list(self._stop_callbacks):
            callback()

    @property
    def lease(self) -> Lease:
        """This epoch's lease (valid while the monitor cannot have fenced it unseen)."""
        return self._lease

    def status(self) -> AgentStatus:
        """A snapshot of this agent's health (see :class:`AgentStatus`)."""
        with self._lock:
            running = tuple(t for t, _a in self._running)
            queued = tuple(r.task_id for r in self._queue)
        return AgentStatus(
            agent_id=self.agent_id,
            epoch=self._epoch,
            state=self._state.value,
            broker_reachable=self._reach.reachable,
            lease_valid=self._lease.valid(),
            lease_remaining_s=self._lease.remaining(),
            last_ack_age_s=self._lease.ack_age(),
            fenced=self.fenced,
            stopping=self._stop_requested.is_set(),
            running=running,
            queued=queued,
        )

    def held(self) -> dict[str, int]:
        """Task id -> attempt of every task this epoch holds (running or queued)."""
        with self._lock:
            out = {rd.task_id: rd.attempt for rd in self._queue}
            for task_id, attempt in self._running:
                out[task_id] = max(attempt, out.get(task_id, 0))
            return out

    # --- start ------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect, announce the epoch (``agent_started``, confirmed) and start the threads.

        Raises :class:`BrokerError` if the broker cannot be reached, :class:`LifecycleError` if
        already started or closed.
        """
        with self._lock:
            if self._state is not State.NEW:
                raise LifecycleError(f"agent already {self._state.value}")
            self._state = State.RUNNING
        try:
            self._start()
        except BaseException:
            self._state = State.CLOSED
            self._shutdown_clients(timeout=0)
            self._closed.set()
            raise

    def _start(self) -> None:
        cfg = self.config
        topics = cfg.topics
        # The listener is positioned before the epoch is announced: the monitor may dispatch to
        # it right after agent_started.
        clients = self._transport.connect(cfg, self._name, on_fatal=self.fail)
        self._producer = clients.writer
        self._listen_consumer = clients.listener
        self._reader = clients.checkpoints
        epoch = self._epoch = new_epoch()
        self._filter = RedispatchFilter(cfg.agent_id, epoch)
        started = self._event(EventKind.AGENT_STARTED, capacity=cfg.capacity, pool=self._pool)
        wait_delivered(started, "agent_started")
        log.info("agent %s started, epoch %d", cfg.agent_id, epoch)
        self._heartbeater = Heartbeater(
            HeartbeatBuilder(
                cfg.agent_id,
                epoch,
                cfg.heartbeat_interval,
                cfg.capacity,
                cfg.heartbeat_timeout,
            ),
            HeartbeatState(
                in_flight=lambda: tuple(self.held()),
                pool=lambda: self._pool,
                draining=lambda: self._draining or self._state is not State.RUNNING,
            ),
            self._send_heartbeat,
            name=self._name,
        )
        self._heartbeater.start()
        self._listener = Listener(
            self._listen_consumer,
            control=clients.control,
            priority_topic=topics.priority,
            lease=self._lease,
            on_control=self._on_control,
            on_redispatch=self._on_redispatch,
            on_failure=self.fail,
            signer=cfg.kafka.signer,
            dead_letters=AgentDeadLetters(self._producer.send, topics.dead_letter, cfg.agent_id),
            agent_id=cfg.agent_id,
            name=self._name,
        )
        self._listener.start()
        self._starter = Starter(self, self._work_changed, name=self._name)
        self._starter.start()

    # --- writing ----------------------------------------------------------------------------

    def _send(self, topic: str, key: str, value: bytes) -> DeliveryFuture:
        if self._producer is None:
            raise LifecycleError("the agent is not started")
        return self._producer.send(topic, key, value)

    def _send_heartbeat(self, beat: Heartbeat) -> None:
        """Send one heartbeat; its acknowledgement renews the lease from when it was sent."""
        self._note_lease()
        self._reach.check()
        sent = self._lease.clock()
        future = self._send(self.config.topics.heartbeats, self.agent_id, beat.encode())
        self._reach.sent(beat.seq, sent)

        def on_answer(f: DeliveryFuture) -> None:
            self._reach.answered(beat.seq)
            if f.exception() is None:
                self._lease.acked(sent)

        future.add_done_callback(on_answer)

    def _note_lease(self) -> None:
        """Say once that the lease ran out (the heartbeat thread looks at every beat)."""
        lapsed = self._lease.lapsed_at()
        if lapsed is None or self._said_lapsed or self._fence is not None:
            return
        self._said_lapsed = True
        log.warning(
            "lease ran out %.1f s ago: no heartbeat acknowledged in time (this process was "
            "paused or the broker is unreachable) and the monitor may have fenced epoch %d; no "
            "task starts and guarded steps wait until a heartbeat is acknowledged and the "
            "control partition is read to its end",
            self._lease.clock() - lapsed,
            self.epoch,
        )

    def _lease_changed(self) -> None:
        """The lease was renewed or synced: wake the starter; say when work resumes."""
        if self._said_lapsed and self._fence is None and self._lease.valid():
            self._said_lapsed = False
            log.warning("lease renewed and no fence found: epoch %d works again", self.epoch)
        with self._lock:
            self._work_changed.notify_all()

    def _event(
        self, kind: EventKind, ctx: TaskContext | None = None, **fields: Any
    ) -> DeliveryFuture:
        if ctx is not None:
            fields.setdefault("task_id", ctx.task_id)
            fields.setdefault("attempt", ctx.attempt)
        event = TaskEvent(
            kind=kind, agent_id=self.agent_id, epoch=self.epoch, at=time.time(), **fields
        )
        return self._send(self.config.topics.task_events, self.agent_id, event.encode())

    def _event_nowait(self, kind: EventKind, ctx: TaskContext | None = None, **fields: Any) -> None:
        """Emit without waiting; a failure is logged (the monitor then relies on timeouts)."""
        try:
            future = self._event(kind, ctx, **fields)
        except AgentFailoverError as exc:
            log.error("%s event for %s not sent: %s", kind.value, ctx, exc)
            return

        def report(f: DeliveryFuture) -> None:
            if (exc := f.exception()) is not None:
                log.error("%s event for %s lost: %s", kind.value, ctx, exc)

        future.add_done_callback(report)

    # CheckpointSink, for TaskContext
    def send_checkpoint(self, task_id: str, value: bytes) -> DeliveryFuture:
        """Queue a checkpoint record (key: task id)."""
        return self._send(self.config.topics.checkpoints, task_id, value)

    def checkpointed(self, ctx: TaskContext, ref: CheckpointRef) -> None:
        """Report a confirmed checkpoint."""
        self._event_nowait(EventKind.CHECKPOINTED, ctx, checkpoint=ref)

    # --- the listener's hooks ---------------------------------------------------------------

    def _on_control(self, record: Control) -> None:
        actions = interpret_control(record, self.agent_id, self.epoch, self.held())
        for task_id, attempt in actions.moved:
            self._move_away(task_id, attempt)
        if actions.fence:
            self._on_fence(record)
        if actions.drain and not self._draining:
            log.info(
                "drain requested (%s): finishing current tasks, taking no new ones",
                record.decision_id,
            )
            self._draining = True
        if actions.promote and self._pool is Pool.STANDBY:
            log.info("promoted to the active pool (%s)", record.decision_id)
            self._pool = Pool.ACTIVE  # the monitor sends new work once heartbeats say so

    def _on_fence(self, record: Control) -> None:
        with self._lock:
            if self._fence is not None:
                return  # the first fence counts
            self._fence = record
            self._queue.take_all()
            running = list(self._running.values())
        log.error(
            "epoch %d fenced by the monitor (%s, %s): stopping %d tasks, writing nothing more",
            self.epoch,
            record.decision_id,
            record.reason,
            len(running),
        )
        for ctx in running:
            ctx._settle(Outcome.FENCED)
        self._lease.wake()
        if self._heartbeater is not None:
            self._heartbeater.stop()  # a fenced epoch must not look alive
        self.request_stop()

    def _move_away(self, task_id: str, attempt: int) -> None:
        with self._lock:
            self._moved[task_id] = max(attempt, self._moved.get(task_id, 0))
            self._queue.drop(task_id, attempt)
            moved = [c for (t, a), c in self._running.items() if t == task_id and a < attempt]
        for ctx in moved:
            if ctx._settle(Outcome.MOVED):
                log.warning(
                    "task %s attempt %d moved to attempt %d: stopping it",
                    task_id,
                    ctx.attempt,
                    attempt,
                )

    def _on_redispatch(self, record: Redispatch) -> None:
        assert self._filter is not None
        if not self._filter.accept(record):
            return
        with self._lock:
            if self._fence is not None or self._moved.get(record.task_id, 0) > record.attempt:
                return
            self._queue.push(record)
            self._work_changed.notify_all()
        log.info(
            "task %s attempt %d dispatched here (%s)", record.task_id, record.attempt, record.reason
        )

    # --- the starter's hooks (StartHost) ----------------------------------------------------

    def _taking(self) -> bool:
        return (
            self._state is State.RUNNING
            and self._fence is None
            and not self._stop_requested.is_set()
        )

    def next_start_locked(self) -> Redispatch | None:
        """The next queued dispatch, its slot held, if one may start now (lock held)."""
        if not (self._taking() and self._has_room() and self._lease.valid()):
            return None
        record = self._queue.pop()
        if record is not None:
            self._starting += 1
        return record

    def _has_room(self) -> bool:
        return len(self._running) + self._starting < self.config.capacity

    def start_task(self, record: Redispatch) -> None:
        """Start a dispatched task: read its checkpoint, announce ``claimed``, launch it."""
        assert self._reader is not None
        try:
            resume = None
            if record.checkpoint is not None:
                resume = self._reader.read(record.checkpoint, record.task_id)
            ctx = self._context(
                record.task, record.attempt, resume=resume, resume_ref=record.checkpoint
            )
        except BaseException:
            with self._lock:
                self._starting -= 1
            raise
        with self._lock:
            self._starting -= 1
            if self._moved.get(record.task_id, 0) > record.attempt or self._fence is not None:
                return
            if not (self._taking() and self._lease.valid()):
                # Stopping: close() releases it. Lease lost meanwhile: it starts once renewed.
                self._queue.push_front(record)
                return
            self._running[(ctx.task_id, ctx.attempt)] = ctx
        self._event_nowait(EventKind.CLAIMED, ctx, task=record.task)
        log.info("task %s attempt %d starts at step %d", ctx.task_id, ctx.attempt, ctx.next_step)
        self._run(ctx)

    def fail(self, exc: BaseException) -> None:
        """A background thread died: record why and stop the agent."""
        thread = threading.current_thread().name
        log.error("agent %s: thread %s failed: %s", self.agent_id, thread, exc, exc_info=exc)
        with self._lock:  # the first failure counts, with its thread
            if self._failure is None:
                self._failure = exc
                self._failed_thread = thread
        self.request_stop()

    # --- running tasks ----------------------------------------------------------------------

    def _context(self, task: Task, attempt: int, **resume: Any) -> TaskContext:
        return TaskContext(
            task=task,
            attempt=attempt,
            agent_id=self.agent_id,
            epoch=self.epoch,
            sink=self,
            policy=self.config.checkpoint_policy,
            gate=self,
            **resume,
        )

    # Gate, for TaskContext.guard()
    def lease_valid(self) -> bool:
        """True while the monitor cannot have fenced this epoch unseen."""
        return self._fence is None and self._lease.valid()

    def wait_lease(self, ctx: TaskContext, timeout: float | None) -> bool:
        """Block until the lease is valid, ``ctx`` ended or the epoch is fenced, at most
        ``timeout`` seconds; True if the lease is valid."""
        valid = self._lease.wait(
            lambda: ctx._outcome is not None or self._fence is not None, timeout
        )
        return valid and self._fence is None

    def wake(self) -> None:
        """Wake the guards waiting for the lease (a context ended)."""
        self._lease.wake()

    def admit(self, ctx: TaskContext, timeout: float | None) -> bool | BaseException:
        """Right before ``ctx``'s handler starts (in the thread or task that runs it): True to
        start it; an exception to end it without running (fenced, moved or released while it
        was being launched); False if the lease is still not valid after ``timeout`` seconds.

        The check is made under the core's lock, so a fence applied before it is never missed;
        a handler is never started while the lease is not valid.
        """
        while True:
            with self._lock:
                if ctx._outcome is not None or self._fence is not None:
                    if ctx._outcome is Outcome.RELEASED:
                        return TaskReleased(f"task {ctx.task_id} released", task_id=ctx.task_id)
                    return FencedError(
                        f"task {ctx.task_id} attempt {ctx.attempt} is fenced", task_id=ctx.task_id
                    )
                if self._lease.valid():
                    return True
            if not self.wait_lease(ctx, timeout) and timeout is not None:
                with self._lock:
                    if ctx._outcome is None and self._fence is None:
                        return False

    def _run(self, ctx: TaskContext) -> None:
        try:
            self._launch(ctx)
        except Exception as exc:
            self.task_done(ctx, exc)

    def task_done(self, ctx: TaskContext, exc: BaseException | None, result: Any = None) -> None:
        """The handler of ``ctx`` returned ``result`` (``exc`` None) or raised; report it and
        free the slot.

        The result goes out on ``completed``; one that is not JSON or is over
        :data:`~agent_failover.models.MAX_RESULT_BYTES` fails the attempt instead, saying why.
        May block until the broker confirms a final checkpoint (when the handler released the
        task), so fronts call it off any event loop.
        """
        try:
            if exc is None:
                try:
                    result = plain_result(result)
                except CodecError as bad:
                    exc = bad
            if exc is None:
                if ctx._settle(Outcome.COMPLETED):
                    self._event_nowait(EventKind.COMPLETED, ctx, result=result)
            elif isinstance(exc, TaskReleased) or ctx._lease_lost:
                # A handler that gave up waiting for the lease hands the task back: if the epoch
                # was fenced the monitor ignores the release, otherwise the task moves at once.
                self._release(ctx)
            elif isinstance(exc, FencedError) and ctx.fenced:
                pass  # nothing more may be written for it
            elif ctx._settle(Outcome.FAILED):
                log.warning("task %s attempt %d failed: %r", ctx.task_id, ctx.attempt, exc)
                self._event_nowait(
                    EventKind.FAILED, ctx, error=f"{type(exc).__name__}: {exc}"[:4096]
                )
        finally:
            with self._lock:
                self._running.pop((ctx.task_id, ctx.attempt), None)
                self._work_changed.notify_all()
            ctx._done.set()

    def _release(self, ctx: TaskContext) -> None:
        """Hand a running task back: final checkpoint of unwritten progress, then ``released``."""
        if ctx._outcome is not None:
            return
        try:
            ctx._write_final(self.config.close_timeout)
        except AgentFailoverError as exc:
            log.warning(
                "task %s: final checkpoint failed (%s); releasing the last one", ctx.task_id, exc
            )
        if ctx._settle(Outcome.RELEASED):
            self._event_nowait(
                EventKind.RELEASED, ctx, task=ctx.task, checkpoint=ctx._release_ref()
            )
            log.info("task %s attempt %d released", ctx.task_id, ctx.attempt)

    # --- close ------------------------------------------------------------------------------

    def close(self) -> None:
        """Graceful stop: stop taking work, let handlers stop, release what is left, leave.

        Gives handlers ``handoff_wait`` to reach a checkpoint (they see ``ctx.stopping``),
        releases the tasks still running, then waits up to ``close_timeout`` for the handlers to
        return. Idempotent; a second caller waits for the first to finish.
        """
        with self._lock:
            state = self._state
            if state in (State.CLOSING, State.CLOSED):
                wait = True
            else:
                wait = False
                self._state = State.CLOSING if state is State.RUNNING else State.CLOSED
        if wait:
            self._closed.wait()
            return
        if state is State.NEW:
            self._closed.set()
            return
        try:
            self._close()
        finally:
            self._state = State.CLOSED
            self._closed.set()

    def _close(self) -> None:
        timeout = self.config.close_timeout
        self.request_stop()  # no new work from here on
        with self._lock:
            running = list(self._running.values())
        for ctx in running:
            ctx._request_stop()
        # Handlers that reach a checkpoint within handoff_wait hand their task back themselves
        # (TaskReleased); the rest are released from here, so their tasks move at once.
        self._wait_handlers(min(self.config.handoff_wait, timeout))
        if self._starter is not None:
            self._starter.stop()  # a task it was starting is running or queued again now
        self._release_all()
        # Released handlers stop at their next SDK call (TaskReleased): let them finish cleanly.
        self._wait_handlers(timeout)
        if self._listener is not None:
            self._listener.stop()
        if self._heartbeater is not None:
            self._heartbeater.stop()
        if self._fence is None:
            self._event_nowait(
                EventKind.AGENT_STOPPED, capacity=self.config.capacity, pool=self._pool
            )
        self._shutdown_clients(timeout)
        log.info("agent %s epoch %d stopped", self.agent_id, self.epoch)

    def _release_all(self) -> None:
        """Release every task still running or queued here (unless fenced: nothing more then)."""
        with self._lock:
            running = list(self._running.values())
            pending = self._queue.take_all()
        if self._fence is not None:
            return
        for ctx in running:
            if ctx._outcome is None:
                log.info("task %s still running at close: releasing it", ctx.task_id)
                ctx._request_stop()
                self._release(ctx)
        for record in pending:
            self._event_nowait(
                EventKind.RELEASED,
                task_id=record.task_id,
                attempt=record.attempt,
                task=record.task,
                checkpoint=record.checkpoint,
            )

    def _wait_handlers(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        with self._lock:
            while self._running and (left := deadline - time.monotonic()) > 0:
                self._work_changed.wait(left)

    def _shutdown_clients(self, timeout: float) -> None:
        if self._heartbeater is not None:
            self._heartbeater.stop()
        if self._starter is not None:
            self._starter.stop()
        if self._listener is not None:
            self._listener.stop()
        if self._listen_consumer is not None:
            with contextlib.suppress(KafkaException, RuntimeError):
                self._listen_consumer.close()
        if self._reader is not None:
            with contextlib.suppress(KafkaException, RuntimeError):
                self._reader.close()
        if self._producer is not None:
            self._producer.close(timeout)

    def raise_for_outcome(self) -> None:
        """After ``run()``: raise :class:`FencedError` if fenced, or why a background thread died.

        A library error is raised as it is; a librdkafka failure as :class:`BrokerError`; anything
        else is a bug: :class:`InternalError`, never retryable.
        """
        fence = self._fence
        if fence is not None and fence.reason is DispatchReason.MISCONFIGURED:
            raise ConfigError(
                f"the monitor refused agent {self.agent_id}: {fence.detail or 'misconfigured'}"
            )
        if fence is not None:
            raise FencedError(
                f"agent {self.agent_id} epoch {self.epoch} was fenced by the monitor "
                f"({fence.decision_id}, {fence.reason or 'no reason given'}); restart to work "
                "again with a new epoch"
            )
        if self._failure is not None:
            raise self._failure_error()

    def _failure_error(self) -> AgentFailoverError:
        """The background thread's failure as a library error (cause kept): a bug is no outage."""
        exc = self._failure
        assert exc is not None
        if isinstance(exc, AgentFailoverError):
            return exc
        where = f"agent {self.agent_id} stopped: thread {self._failed_thread} failed"
        if isinstance(exc, KafkaException):  # librdkafka gave up (fatal error, authentication)
            error = broker_error(where, exc)
            error.__cause__ = exc
            return error
        return InternalError(f"{where}: {type(exc).__name__}: {exc}", cause=exc)


class AgentFront:
    """What the synchronous and asyncio fronts share: the read-only view of the core."""

    _core: AgentCore

    @property
    def agent_id(self) -> str:
        """This agent's id."""
        return self._core.agent_id

    @property
    def epoch(self) -> int:
        """This incarnation's epoch (after ``start()``)."""
        return self._core.epoch

    @property
    def fenced(self) -> bool:
        """True once the monitor fenced this epoch."""
        return self._core.fenced

    def in_flight(self) -> dict[str, int]:
        """Task id -> attempt of the tasks held now (running or queued)."""
        return self._core.held()

    def status(self) -> AgentStatus:
        """This agent's health now: broker reachable, lease valid, fenced, tasks running and
        queued (:class:`~agent_failover.sdk.health.AgentStatus`)."""
        return self._core.status()
