"""Waiting for how a task ended: :class:`Submission`, and the thread that reads ``outcomes``.

The monitor publishes one ``task_outcome`` per task to ``outcomes`` (key: task id, the task's
partition), and only for the end that counts: never a fenced epoch's or a superseded attempt's.
A monitor restart can publish it again, so readers take the *first* outcome per task id
(docs/protocol.md, "Outcomes"). A submitter starts reading a task's outcome partition at its end
*before* it writes the task: the outcome, written after the task, cannot be missed.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
import weakref

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from agent_failover.config import KafkaConfig, Topics
from agent_failover.errors import (
    BrokerError,
    CodecError,
    LifecycleError,
    OutcomeTimeout,
    TaskFailed,
)
from agent_failover.logs import rate_limited
from agent_failover.models import JSON, OutcomeKind, TaskOutcome
from agent_failover.partitioner import partition_for
from agent_failover.sdk.heartbeat import BackgroundLoop
from agent_failover.sdk.kafka import assigned_consumer_conf, broker_error, default_fetch_wait

log = logging.getLogger(__name__)
#: Outcome records refused (not decodable, or not signed by the fleet), rate limited.
refused = rate_limited(f"{__name__}.refused")

OutcomeFuture = concurrent.futures.Future[TaskOutcome]


class Submission:
    """A submitted task: where its record lies, and how it ended once the monitor says so.

    ``outcome()`` and ``result()`` wait for the task's outcome, from any thread; they need the
    submitter that wrote the task to be open (its thread reads the outcomes)::

        submission = submitter.submit(Task(task_id="t1", task_type="summarise"))
        print(submission.result(timeout=60))   # what the handler returned
    """

    __slots__ = ("__weakref__", "_future", "offset", "partition", "task_id")

    def __init__(self, task_id: str, partition: int, offset: int, future: OutcomeFuture) -> None:
        #: The task's id.
        self.task_id = task_id
        #: Where the task's record lies in ``tasks``: its partition and offset.
        self.partition = partition
        self.offset = offset
        self._future = future

    def __repr__(self) -> str:
        state = "done" if self.done() else "pending"
        return f"<Submission task_id={self.task_id!r} {self.partition}@{self.offset} {state}>"

    def done(self) -> bool:
        """Whether the outcome is known (or waiting for it failed)."""
        return self._future.done()

    def outcome(self, timeout: float | None = None) -> TaskOutcome:
        """The task's outcome, completed or failed, waiting up to ``timeout`` seconds for it
        (None: as long as it takes).

        Raises :class:`OutcomeTimeout` if none arrived in time (wait again to keep waiting),
        :class:`LifecycleError` if the submitter was closed first, :class:`BrokerError` if
        reading the outcomes failed.
        """
        try:
            return self._future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise OutcomeTimeout(
                f"task {self.task_id}: no outcome within {timeout:g} s (is a monitor running, "
                "and an agent that takes the task?)",
                task_id=self.task_id,
            ) from None

    def result(self, timeout: float | None = None) -> JSON:
        """What the task's handler returned (None if nothing), waiting as :meth:`outcome` does.

        Raises :class:`TaskFailed` (with the error) if the task failed, and what
        :meth:`outcome` raises.
        """
        outcome = self.outcome(timeout)
        if outcome.kind is OutcomeKind.FAILED:
            error = outcome.error or ""
            raise TaskFailed(
                f"task {self.task_id} failed (attempt {outcome.attempt} on {outcome.agent_id}): "
                f"{error}",
                task_id=self.task_id,
                error=error,
                outcome=outcome,
            )
        return outcome.result


class OutcomeWatcher(BackgroundLoop):
    """Reads ``outcomes`` for the tasks one submitter wrote; the first outcome of each resolves
    its future.

    :meth:`watch` (before the task is written) positions the task's partition at its end the
    first time, and registers the task. A task whose :class:`Submission` was dropped is
    forgotten: its outcome is skipped like everyone else's.
    """

    def __init__(self, kafka: KafkaConfig, topics: Topics, *, name: str) -> None:
        super().__init__(f"{name}-outcomes")
        conf = assigned_consumer_conf(kafka, f"{name}-outcomes", default_fetch_wait(kafka))
        try:
            self._consumer = Consumer(conf)
        except KafkaException as exc:
            raise broker_error("cannot create the outcomes consumer", exc) from exc
        self._topic = topics.outcomes
        self._partitions = topics.task_partitions
        self._signer = kafka.signer
        self._timeout = kafka.connect_timeout
        self._lock = threading.Lock()
        self._pending: weakref.WeakValueDictionary[str, OutcomeFuture] = (
            weakref.WeakValueDictionary()
        )
        self._positions: dict[int, int] = {}  # partition -> where reading it started
        self._to_assign: list[TopicPartition] = []
        self._failure: BaseException | None = None

    def watch(self, task_id: str) -> OutcomeFuture:
        """The future of ``task_id``'s outcome; call it before writing the task.

        Blocks for one request the first time a partition is watched. Raises
        :class:`BrokerError` if its end cannot be found, :class:`LifecycleError` once closed.
        """
        partition = partition_for(task_id, self._partitions)
        with self._lock:
            self._check_open()
            if partition not in self._positions:
                # Under the lock: a second submit to the partition must not write first.
                self._positions[partition] = end = self._end_of(partition)
                self._to_assign.append(TopicPartition(self._topic, partition, end))
            future = self._pending.get(task_id)
            if future is None or future.done():
                future = OutcomeFuture()
                future.set_running_or_notify_cancel()  # nobody may cancel the thread's work
                self._pending[task_id] = future
            return future

    def _check_open(self) -> None:
        if self._stop.is_set():
            raise LifecycleError("the submitter is closed")
        if self._failure is not None:
            raise broker_error("reading the outcomes failed", self._failure)

    def _end_of(self, partition: int) -> int:
        tp = TopicPartition(self._topic, partition)
        try:
            _low, high = self._consumer.get_watermark_offsets(
                tp, timeout=self._timeout, cached=False
            )
        except KafkaException as exc:
            raise broker_error(f"cannot find the end of {self._topic}[{partition}]", exc) from exc
        return int(high)

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                with self._lock:
                    new, self._to_assign = self._to_assign, []
                if new:
                    self._consumer.incremental_assign(new)
                for msg in self._consumer.consume(num_messages=500, timeout=0.1):
                    self._handle(msg)
        except Exception as exc:  # nobody else would tell the waiters
            log.error("reading %s failed: %s", self._topic, exc)
            self._fail_all(exc)

    def _handle(self, msg: Message) -> None:
        if (error := msg.error()) is not None:
            refused.warning("reading %s: %s", self._topic, error.str())
            return
        key = msg.key()
        task_id = key.decode("utf-8", "replace") if isinstance(key, bytes) else ""
        with self._lock:
            future = self._pending.get(task_id)
        if future is None:
            return  # another submitter's task, or one nobody waits for any more
        try:
            outcome = self._signer.open(TaskOutcome, msg)
        except CodecError as exc:
            refused.warning(
                "skipping %s[%s]@%s: %s", self._topic, msg.partition(), msg.offset(), exc
            )
            return
        if outcome.task_id != task_id:
            refused.warning("skipping an outcome of %r keyed %r", outcome.task_id, task_id)
            return
        with self._lock:
            self._pending.pop(task_id, None)  # the first outcome counts
        future.set_result(outcome)

    def _fail_all(self, exc: BaseException) -> None:
        with self._lock:
            self._failure = exc
            waiting = list(self._pending.values())
            self._pending.clear()
        error = exc if isinstance(exc, BrokerError) else broker_error("reading outcomes", exc)
        for future in waiting:
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                future.set_exception(error)

    def close(self) -> None:
        """Stop reading; tasks still waiting get a :class:`LifecycleError`."""
        self.stop()
        with self._lock:
            waiting = list(self._pending.items())
            self._pending.clear()
        for task_id, future in waiting:
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                future.set_exception(
                    LifecycleError(f"the submitter was closed before task {task_id} ended")
                )
        with contextlib.suppress(KafkaException, RuntimeError):
            self._consumer.close()
