"""The agent core: one epoch's clients, threads and lifecycle, wiring the parts that act.

Both fronts (:class:`~agent_failover.sdk.agent.Agent` and
:class:`~agent_failover.sdk.aio.AsyncAgent`) share this class; it does all the I/O, through the
clients its transport gives it (Kafka unless a test says otherwise,
:mod:`agent_failover.sdk.transport`). A front only supplies ``launch(ctx)`` (run the handler
somewhere, then call :meth:`AgentCore.task_done`).

The core starts and stops; the parts it wires each hold one concern, sharing what the epoch
holds (:mod:`~agent_failover.sdk.holdings`):

* :mod:`~agent_failover.sdk.writes`: task events and checkpoint records;
* :mod:`~agent_failover.sdk.renewal`: heartbeats renew the lease (:mod:`~agent_failover.sdk.lease`);
* :mod:`~agent_failover.sdk.control`: fences, moves, drains, promotions and dispatches;
* :mod:`~agent_failover.sdk.tasks`: a slot taken, the task started, its end reported;
* :mod:`~agent_failover.sdk.admission`: no handler starts and no guarded step acts without a
  valid lease;
* :mod:`~agent_failover.sdk.handoff`: tasks handed back, by a handler or the graceful stop.

``run()`` ends with the error :mod:`~agent_failover.sdk.ending` makes of a fence or a failure.

Threads (all daemons, named ``af-<agent_id>-...``):

* ``delivery``: serves the producer's delivery reports (resolves write futures);
* ``heartbeat``: one heartbeat every ``heartbeat_interval``; each acknowledgement renews the
  lease;
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
from agent_failover.errors import LifecycleError
from agent_failover.models import EventKind, Pool
from agent_failover.sdk.admission import Admission
from agent_failover.sdk.context import TaskContext
from agent_failover.sdk.control import ControlHandler
from agent_failover.sdk.deadletters import AgentDeadLetters
from agent_failover.sdk.ending import failure_error, fence_error
from agent_failover.sdk.handoff import Handoff
from agent_failover.sdk.health import AgentStatus
from agent_failover.sdk.heartbeat import HeartbeatBuilder, Heartbeater, HeartbeatState
from agent_failover.sdk.holdings import Holdings
from agent_failover.sdk.intake import Listener, Starter
from agent_failover.sdk.kafka import wait_delivered
from agent_failover.sdk.lease import Lease
from agent_failover.sdk.renewal import LeaseRenewal
from agent_failover.sdk.tasks import Launch, TaskRunner
from agent_failover.sdk.transport import (
    CheckpointSource,
    KafkaTransport,
    RecordSource,
    RecordWriter,
    Transport,
)
from agent_failover.sdk.writes import AgentWrites

log = logging.getLogger(__name__)

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
        self._name = f"af-{config.agent_id}"
        self._state = State.NEW
        self._epoch: int | None = None
        self._holdings = Holdings(config.capacity)
        # One lock for the core and what it holds: a stop request and a fence are seen together.
        self._lock = self._holdings.lock
        self._failure: BaseException | None = None
        self._failed_thread = ""
        self._stop_requested = threading.Event()
        self._stop_callbacks: list[Callable[[], None]] = []
        self._closed = threading.Event()
        self._transport = transport or KafkaTransport()
        self._producer: RecordWriter | None = None
        self._listen_consumer: RecordSource | None = None
        self._reader: CheckpointSource | None = None
        self._listener: Listener | None = None
        self._starter: Starter | None = None
        self._heartbeater: Heartbeater | None = None
        # The parts read the epoch when they act: it is chosen only by start().
        self._writes = AgentWrites(config.topics, config.agent_id, lambda: self.epoch)
        self._renewal = LeaseRenewal(
            config.heartbeat_timeout,
            config.kafka.bootstrap_servers,
            send=lambda beat: self._writes.send(config.topics.heartbeats, config.agent_id, beat),
            fenced=lambda: self.fenced,
            epoch=lambda: self.epoch,
            on_change=self._holdings.wake,  # a renewed lease may let queued work start
        )
        self._lease = self._renewal.lease
        self._admission = Admission(self._holdings, self._lease)
        self._control = ControlHandler(
            self._holdings, agent_id=config.agent_id, pool=Pool(config.pool), on_fenced=self._fenced
        )
        self._handoff = Handoff(
            self._holdings,
            self._writes,
            close_timeout=config.close_timeout,
            handoff_wait=config.handoff_wait,
        )
        self._tasks = TaskRunner(
            config,
            self._holdings,
            lease=self._lease,
            admission=self._admission,
            writes=self._writes,
            handoff=self._handoff,
            launch=launch,
            taking=self._taking,
            epoch=lambda: self.epoch,
            fail=self.fail,
        )

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
        return self._holdings.fence is not None

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
        holdings = self._holdings
        with self._lock:
            running = tuple(t for t, _a in holdings.running)
            queued = tuple(r.task_id for r in holdings.queue)
        return AgentStatus(
            agent_id=self.agent_id,
            epoch=self._epoch,
            state=self._state.value,
            broker_reachable=self._renewal.reach.reachable,
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
        return self._holdings.held()

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
        self._writes.attach(clients.writer)
        self._listen_consumer = clients.listener
        self._reader = self._tasks.reader = clients.checkpoints
        epoch = self._epoch = new_epoch()
        self._control.begin(epoch)
        started = self._writes.event(
            EventKind.AGENT_STARTED, capacity=cfg.capacity, pool=self._control.pool
        )
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
                pool=lambda: self._control.pool,
                draining=lambda: self._control.draining or self._state is not State.RUNNING,
            ),
            self._renewal.send_heartbeat,
            name=self._name,
        )
        self._heartbeater.start()
        self._listener = Listener(
            self._listen_consumer,
            control=clients.control,
            priority_topic=topics.priority,
            lease=self._lease,
            on_control=self._control.on_control,
            on_redispatch=self._control.on_redispatch,
            on_failure=self.fail,
            signer=cfg.kafka.signer,
            dead_letters=AgentDeadLetters(self._producer.send, topics.dead_letter, cfg.agent_id),
            agent_id=cfg.agent_id,
            name=self._name,
        )
        self._listener.start()
        self._starter = Starter(self._tasks, self._holdings.changed, name=self._name)
        self._starter.start()

    # --- what the parts ask of the core ------------------------------------------------------

    def _taking(self) -> bool:
        """True while the agent takes work: running, not fenced, no stop requested."""
        return (
            self._state is State.RUNNING
            and self._holdings.fence is None
            and not self._stop_requested.is_set()
        )

    def _fenced(self) -> None:
        """The epoch was fenced (its tasks stopped): stop beating and stop the agent."""
        self._lease.wake()
        if self._heartbeater is not None:
            self._heartbeater.stop()  # a fenced epoch must not look alive
        self.request_stop()

    def fail(self, exc: BaseException) -> None:
        """A background thread died: record why and stop the agent."""
        thread = threading.current_thread().name
        log.error("agent %s: thread %s failed: %s", self.agent_id, thread, exc, exc_info=exc)
        with self._lock:  # the first failure counts, with its thread
            if self._failure is None:
                self._failure = exc
                self._failed_thread = thread
        self.request_stop()

    # --- what the fronts call ---------------------------------------------------------------

    def admit(self, ctx: TaskContext, timeout: float | None) -> bool | BaseException:
        """Whether ``ctx``'s handler may start now (:meth:`Admission.admit
        <agent_failover.sdk.admission.Admission.admit>`)."""
        return self._admission.admit(ctx, timeout)

    def task_done(self, ctx: TaskContext, exc: BaseException | None, result: Any = None) -> None:
        """Report how ``ctx``'s handler ended and free its slot (:meth:`TaskRunner.task_done
        <agent_failover.sdk.tasks.TaskRunner.task_done>`); may block on the broker."""
        self._tasks.task_done(ctx, exc, result)

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
        self._handoff.hand_off(self._stop_starting)
        if self._listener is not None:
            self._listener.stop()
        if self._heartbeater is not None:
            self._heartbeater.stop()
        if not self.fenced:
            self._writes.event_nowait(
                EventKind.AGENT_STOPPED, capacity=self.config.capacity, pool=self._control.pool
            )
        self._shutdown_clients(timeout)
        log.info("agent %s epoch %d stopped", self.agent_id, self.epoch)

    def _stop_starting(self) -> None:
        if self._starter is not None:
            self._starter.stop()  # a task it was starting is running or queued again now

    def _shutdown_clients(self, timeout: float) -> None:
        if self._heartbeater is not None:
            self._heartbeater.stop()
        self._stop_starting()
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
        else is a bug: :class:`InternalError`, never retryable (:mod:`agent_failover.sdk.ending`).
        """
        fence = self._holdings.fence
        if fence is not None:
            raise fence_error(fence, self.agent_id, self.epoch)
        if self._failure is not None:
            raise failure_error(self._failure, self.agent_id, self._failed_thread)
