"""The agent's lease: how long it may act on its own without hearing the monitor's verdict.

The monitor fences an epoch for silence only after ``heartbeat_timeout`` without receiving a
heartbeat, on its own clock (docs/protocol.md, "The monitor's decisions"). A heartbeat the broker
acknowledged was appended to the log, so the monitor received it (or will) no earlier than it was
sent. Hence an agent whose last acknowledged heartbeat was sent at local time ``s`` cannot be
fenced for silence before ``s + heartbeat_timeout``, measured by any clock running at the same
rate. The lease is that interval, shortened by a margin:

* clocks: NTP slews a clock by at most 500 ppm, so two hosts disagree by well under 0.1 % of the
  timeout; the margin (10 % of it) covers that many times over;
* the gap between a check and the side effect it guards (scheduling, the interpreter lock, a
  garbage collection pause) is part of what the margin absorbs; a process frozen in that very gap
  is not: no check made before a side effect can cover it (the attempt chain still rejects what
  such a step writes to Kafka).

Time is read from ``CLOCK_BOOTTIME`` where the platform has it: unlike ``time.monotonic()`` on
Linux, it keeps counting while the machine is suspended, as the monitor's clock does.

Other fences do not wait for the timeout (the same agent id starting again, a stopped epoch still
holding tasks, a refused configuration): they are known only by reading the control partition.
So once the lease lapsed, it is valid again only after a renewal AND a read of the agent's own
control partition to an end fetched after that renewal, without a fence: a fence may sit unread.
The listener does that read (:meth:`Lease.needs_sync`, :meth:`Lease.synced`).

Thread-safe. Callbacks (``on_change``) run outside the lease's lock, so a caller holding its own
lock may read the lease.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

#: Share of the heartbeat timeout kept as a safety margin (see the module docstring).
MARGIN_SHARE = 0.1


#: Linux's clock that counts a suspend; elsewhere the monotonic clock.
_BOOTTIME: int | None = getattr(time, "CLOCK_BOOTTIME", None)


def lease_clock() -> float:
    """Seconds on a clock that never goes back and keeps counting through a suspend."""
    if _BOOTTIME is None:  # pragma: no cover - not Linux
        return time.monotonic()
    return time.clock_gettime(_BOOTTIME)


class Lease:
    """The interval in which the monitor cannot have fenced this epoch for silence.

    States: *new* (no heartbeat acknowledged yet: not valid), *valid* (until it runs out),
    *lapsed* (it ran out at some instant: not valid until renewed and synced). A lapse is a fact
    of the timeline, noticed either by a check after it or by the first acknowledgement that
    extends a lease already run out, so nobody needs to be looking when it happens.
    """

    def __init__(
        self,
        timeout: float,
        *,
        margin: float | None = None,
        clock: Callable[[], float] = lease_clock,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.timeout = timeout
        self.margin = timeout * MARGIN_SHARE if margin is None else margin
        self.clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._expires = -math.inf
        self._started = False
        self._lapsed_at: float | None = None  # when it ran out; None while valid (or new)
        self._renewed_at: float | None = None  # the first renewal since it ran out
        self._last_ack: float | None = None  # when a heartbeat was last acknowledged

    # --- what the heartbeat and the listener report --------------------------------------------

    def acked(self, sent_at: float) -> None:
        """A heartbeat sent at ``sent_at`` (this lease's clock) was acknowledged by the broker."""
        with self._lock:
            now = self.clock()
            self._last_ack = now
            self._note_lapse(now)
            expires = sent_at + self.timeout - self.margin
            if expires <= now or expires <= self._expires:
                return  # acknowledged too late to prove anything about now, or nothing new
            self._expires = expires
            if not self._started:
                # The listener was positioned on the control partition before the epoch was
                # announced: no fence can sit unread yet.
                self._started = True
            elif self._lapsed_at is not None and self._renewed_at is None:
                self._renewed_at = now
            self._changed.notify_all()
        self._notify()

    def synced(self, started_at: float) -> bool:
        """The control partition was read, without a fence, to an end fetched at ``started_at``.

        Makes a lapsed lease valid again if it was renewed before ``started_at``; returns whether
        it is valid now.
        """
        with self._lock:
            now = self.clock()
            self._note_lapse(now)
            renewed = self._renewed_at
            if self._lapsed_at is not None and renewed is not None and started_at >= renewed:
                self._lapsed_at = self._renewed_at = None
                self._changed.notify_all()
                resumed = True
            else:
                resumed = False
            valid = self._valid(now)
        if resumed:
            self._notify()
        return valid

    def wake(self) -> None:
        """Wake every :meth:`wait` (something else it waits for may have happened)."""
        with self._lock:
            self._changed.notify_all()

    # --- what everyone asks --------------------------------------------------------------------

    def valid(self) -> bool:
        """True while the monitor cannot have fenced this epoch unseen."""
        with self._lock:
            now = self.clock()
            self._note_lapse(now)
            return self._valid(now)

    def needs_sync(self) -> bool:
        """True once a lapsed lease was renewed: the control partition must be read to its end."""
        with self._lock:
            self._note_lapse(self.clock())
            return self._lapsed_at is not None and self._renewed_at is not None

    def lapsed_at(self) -> float | None:
        """When the lease ran out, if it is lapsed now (this lease's clock)."""
        with self._lock:
            self._note_lapse(self.clock())
            return self._lapsed_at

    def remaining(self) -> float:
        """Seconds of validity left (0 when not valid)."""
        with self._lock:
            now = self.clock()
            self._note_lapse(now)
            return max(0.0, self._expires - now) if self._valid(now) else 0.0

    def ack_age(self) -> float | None:
        """Seconds since a heartbeat was last acknowledged (None: none was yet)."""
        with self._lock:
            return None if self._last_ack is None else self.clock() - self._last_ack

    def wait(self, until: Callable[[], bool], timeout: float | None) -> bool:
        """Block until the lease is valid or ``until()`` holds (checked when woken: see
        :meth:`wake`), at most ``timeout`` seconds (None: no limit); returns :meth:`valid`."""
        # The bound is real time, whatever clock the lease reads.
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                now = self.clock()
                self._note_lapse(now)
                if self._valid(now):
                    return True
                if until():
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                # Bounded slices: a lease that runs out again needs no notification, and a
                # condition ``until`` cannot signal is still seen.
                self._changed.wait(0.5 if left is None else min(left, 0.5))

    # --- internals ----------------------------------------------------------------------------

    def _valid(self, now: float) -> bool:
        return self._started and self._lapsed_at is None and now < self._expires

    def _note_lapse(self, now: float) -> None:
        if not self._started or now < self._expires:
            return
        if self._lapsed_at is None:
            self._lapsed_at = self._expires
        self._renewed_at = None  # a renewal that ran out before the read ended counts for nothing

    def _notify(self) -> None:
        if self._on_change is not None:
            self._on_change()
