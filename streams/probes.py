"""Whether this worker is alive and ready: what ``/healthz`` and ``/readyz`` answer.

- **Alive** (``/healthz``): the event loop turns. Every detection tick stamps the time; a stamp
  older than :data:`LOOP_LIMIT` means the loop is blocked. Before the first tick the worker is
  alive for :data:`STARTUP_LIMIT` (joining the group and starting the app take a while).
- **Ready** (``/readyz``): the broker answered within :data:`BROKER_LIMIT`, the worker received
  an assignment (possibly empty: with more workers than partitions, a spare worker is ready),
  its tables are recovered, its heartbeat reader reads the assigned partitions, and no owned
  partition is still in its grace period. The latest tick says which of these hold.

The tick writes from the event loop, the heartbeat thread writes when the broker last answered,
and the HTTP threads read: each is one attribute assignment, atomic under the GIL.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from agent_failover.streams.monitor import Skipped, TickReport

#: The broker is down when it has not answered for this long (seconds).
BROKER_LIMIT = 10.0
#: The event loop is blocked when no tick ran for this long (seconds).
LOOP_LIMIT = 10.0
#: Alive without a tick for this long after start (seconds).
STARTUP_LIMIT = 120.0


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """A probe's answer: whether it passes, and one line saying why."""

    ok: bool
    reason: str


def not_ready(report: TickReport, *, assigned: bool, grace_left: float) -> str | None:
    """Why a worker whose last tick went as ``report`` is not ready, or ``None`` if it is.

    ``assigned``: an assignment was received and its tables recovered at least once;
    ``grace_left``: seconds until the last owned partition's grace period is over.
    """
    if not assigned:
        return "partitions not assigned yet: joining the monitor group, recovering tables"
    if report.skipped is Skipped.BUSY:
        return "rebalancing or recovering tables"
    if report.skipped is Skipped.STALLED:
        return "stalled: the event loop or the heartbeat reader was starved"
    if report.skipped is Skipped.BROKER:
        return "the broker went quiet: no decisions until it answers again"
    if report.skipped is Skipped.ASSIGNING:
        return "the heartbeat reader does not read the assigned partitions yet"
    if grace_left > 0:
        return f"grace period: {grace_left:.1f} s left before failures are declared"
    return None


class Probes:
    """The state the probes read; ``clock`` is the monitor's ``time.monotonic``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started = clock()
        # (time of the last tick, why the worker was not ready then); None: no tick yet.
        self._tick: tuple[float, str | None] | None = None
        self._partitions = 0
        self._broker_at: float | None = None

    def tick(self, at: float, reason: str | None, partitions: int) -> None:
        """A tick ran at ``at``; ``reason`` why the worker is not ready (``None``: ready) with
        ``partitions`` owned."""
        self._tick = (at, reason)
        self._partitions = partitions

    def broker_answered(self, at: float) -> None:
        """The broker last answered at ``at`` (from the heartbeat consumer's statistics)."""
        self._broker_at = at

    def broker_up(self) -> bool:
        """Whether the broker answered within :data:`BROKER_LIMIT`."""
        at = self._broker_at
        return at is not None and self._clock() - at <= BROKER_LIMIT

    def alive(self) -> Verdict:
        """``/healthz``: whether the event loop turns."""
        now, tick = self._clock(), self._tick
        if tick is None:
            waited = now - self._started
            if waited <= STARTUP_LIMIT:
                return Verdict(True, f"starting: no detection tick yet ({waited:.0f} s)")
            return Verdict(False, f"no detection tick {waited:.0f} s after start")
        quiet = now - tick[0]
        if quiet > LOOP_LIMIT:
            return Verdict(False, f"event loop blocked: last detection tick {quiet:.0f} s ago")
        return Verdict(True, "alive")

    def ready(self) -> Verdict:
        """``/readyz``: whether this worker is doing its job."""
        alive = self.alive()
        now, tick, broker_at = self._clock(), self._tick, self._broker_at
        if not alive.ok:
            return alive
        if broker_at is None:
            return Verdict(False, "broker unreachable: no answer yet")
        if now - broker_at > BROKER_LIMIT:
            return Verdict(False, f"broker unreachable: no answer for {now - broker_at:.0f} s")
        if tick is None:
            return Verdict(False, "starting: no detection tick yet")
        if tick[1] is not None:
            return Verdict(False, tick[1])
        return Verdict(True, f"ready: {self._partitions} agent partition(s) owned")
