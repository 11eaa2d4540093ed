"""What an agent knows about its own health: the broker's reachability and :class:`AgentStatus`.

The broker counts as reachable while heartbeats are acknowledged: a heartbeat waiting longer than
half the heartbeat timeout for its acknowledgement means the broker is gone (down, hung, or cut
off from here), and the lease runs out soon after. The agent says so once when it goes, again
at most every :data:`REPEAT_S` while it stays away, and once when it answers again, instead of a
line per reconnect attempt.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
from collections.abc import Callable

log = logging.getLogger("agent_failover.sdk.broker")

#: While the broker stays unreachable, one reminder this often.
REPEAT_S = 30.0


@dataclasses.dataclass(frozen=True, slots=True)
class AgentStatus:
    """A snapshot of an agent's health (``Agent.status()``), for logs, probes and dashboards."""

    agent_id: str
    #: This incarnation's epoch (None before ``start()``).
    epoch: int | None
    #: ``new``, ``running``, ``closing`` or ``closed``.
    state: str
    #: Heartbeats are being acknowledged (False: the broker is unreachable from here).
    broker_reachable: bool
    #: The monitor cannot have fenced this epoch unseen: work may start and steps may act.
    lease_valid: bool
    #: Seconds the lease has left (0 when not valid).
    lease_remaining_s: float
    #: Seconds since a heartbeat was last acknowledged (None: none yet).
    last_ack_age_s: float | None
    #: The monitor fenced this epoch: it does nothing more.
    fenced: bool
    #: A stop was asked for (signal, ``stop()``, fence, failure).
    stopping: bool
    #: Tasks whose handlers run now, and tasks queued here, by id.
    running: tuple[str, ...]
    queued: tuple[str, ...]


class Reachability:
    """Whether the broker answers, judged by heartbeat acknowledgements, and the log lines.

    ``after``: seconds a heartbeat may wait for its acknowledgement before the broker counts as
    unreachable. ``where`` names the broker in the log (its bootstrap address). Thread-safe.
    """

    def __init__(self, after: float, where: str, clock: Callable[[], float]) -> None:
        self._after = after
        self._where = where
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: collections.deque[tuple[int, float]] = collections.deque()
        self._down_since: float | None = None
        self._said_at = 0.0

    @property
    def reachable(self) -> bool:
        """False from when a heartbeat waited too long until the broker answers again."""
        return self._down_since is None

    def sent(self, seq: int, at: float) -> None:
        """Heartbeat ``seq`` was handed to the producer at ``at``."""
        with self._lock:
            self._pending.append((seq, at))

    def answered(self, seq: int) -> None:
        """The broker answered heartbeat ``seq`` (acknowledged or refused it): it is there.

        Heartbeats are answered in order (one partition, idempotent producer), so every earlier
        one is settled too.
        """
        with self._lock:
            while self._pending and self._pending[0][0] <= seq:
                self._pending.popleft()
            down, self._down_since = self._down_since, None
            now = self._clock()
        if down is not None:
            log.warning("broker %s reachable again after %.1f s", self._where, now - down)

    def check(self) -> bool:
        """Look at the oldest heartbeat not answered yet; log a change. Returns
        :attr:`reachable`."""
        with self._lock:
            now = self._clock()
            oldest = self._pending[0][1] if self._pending else None
            if oldest is None or now - oldest < self._after:
                return self._down_since is None
            first = self._down_since is None
            if not first and now - self._said_at < REPEAT_S:
                return False
            if first:
                self._down_since = oldest
            self._said_at = now
            down = self._down_since
        assert down is not None
        if first:
            log.error(
                "broker %s unreachable: no heartbeat acknowledged for %.1f s; new tasks wait and "
                "running tasks pause at their next guard or checkpoint until it answers",
                self._where,
                now - down,
            )
        else:
            log.warning("broker %s still unreachable after %.0f s", self._where, now - down)
        return False
