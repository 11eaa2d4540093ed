"""Heartbeats: a background thread that reports liveness and load every ``heartbeat_interval``."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from agent_failover.errors import AgentFailoverError
from agent_failover.models import Heartbeat, Pool

log = logging.getLogger(__name__)


class HeartbeatState:
    """What a heartbeat reports besides identity; read fresh for every beat (only the newest)."""

    def __init__(
        self,
        in_flight: Callable[[], tuple[str, ...]],
        pool: Callable[[], Pool],
        draining: Callable[[], bool],
    ) -> None:
        self.in_flight = in_flight
        self.pool = pool
        self.draining = draining


class HeartbeatBuilder:
    """Numbers heartbeats of one epoch from 0 (pure; the thread below sends them)."""

    def __init__(
        self,
        agent_id: str,
        epoch: int,
        interval_s: float,
        capacity: int,
        timeout_s: float | None = None,
    ) -> None:
        self.agent_id = agent_id
        self.epoch = epoch
        self.interval_s = interval_s
        self.capacity = capacity
        self.timeout_s = timeout_s  # the heartbeat timeout the agent's lease assumes
        self.seq = 0

    def build(self, state: HeartbeatState, now: float) -> Heartbeat:
        """The next heartbeat; ``seq`` advances only when :meth:`sent` is called."""
        return Heartbeat(
            agent_id=self.agent_id,
            epoch=self.epoch,
            seq=self.seq,
            sent_at=now,
            interval_s=self.interval_s,
            capacity=self.capacity,
            in_flight=state.in_flight(),
            pool=state.pool(),
            draining=state.draining(),
            heartbeat_timeout_s=self.timeout_s,
        )

    def sent(self) -> None:
        """The beat was handed to the producer: the next one gets the next number."""
        self.seq += 1


class BackgroundLoop:
    """A daemon thread running ``_loop`` until :meth:`stop`; ``_stop`` tells the loop to end."""

    def __init__(self, thread_name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=thread_name, daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the loop to end; returns once the thread has ended."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        raise NotImplementedError


class Heartbeater(BackgroundLoop):
    """Sends a heartbeat every interval from its own thread; never blocks the agent's work.

    ``send`` must not block (the SDK queues the record in librdkafka and returns); a beat that
    cannot be queued is skipped, not retried: the next one carries newer information anyway.
    """

    def __init__(
        self,
        builder: HeartbeatBuilder,
        state: HeartbeatState,
        send: Callable[[Heartbeat], None],
        *,
        name: str,
    ) -> None:
        super().__init__(f"{name}-heartbeat")  # first beat at start, then one every interval
        self._builder = builder
        self._state = state
        self._send = send

    def _loop(self) -> None:
        interval = self._builder.interval_s
        due = time.monotonic()
        while True:
            self._beat()
            due += interval
            now = time.monotonic()
            if due < now:  # fell behind (a stalled process): resume the rhythm, do not burst
                due = now + interval
            if self._stop.wait(due - now):
                return

    def _beat(self) -> None:
        beat = self._builder.build(self._state, time.time())
        try:
            self._send(beat)
        except AgentFailoverError as exc:
            log.warning("heartbeat %d not sent: %s", beat.seq, exc)
            return
        self._builder.sent()
