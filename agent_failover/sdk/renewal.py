"""Keeping the lease: each acknowledged heartbeat renews it, and the log says when it lapses.

The heartbeat thread sends through :meth:`LeaseRenewal.send_heartbeat`; the broker's
acknowledgement renews the :class:`~agent_failover.sdk.lease.Lease` from when the beat was sent,
and every answer (or its absence) tells the broker's reachability
(:class:`~agent_failover.sdk.health.Reachability`). A lapse is said once, and so is the renewal
that ends it, so a long outage is two log lines, not one a beat.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent_failover.models import Heartbeat
from agent_failover.sdk.health import Reachability
from agent_failover.sdk.kafka import DeliveryFuture
from agent_failover.sdk.lease import Lease

log = logging.getLogger(__name__)


class LeaseRenewal:
    """The epoch's lease and the broker's reachability, kept by its heartbeats.

    ``send`` queues one encoded heartbeat; ``fenced`` tells whether the epoch was fenced (then a
    lapse means nothing more); ``epoch`` names the epoch in the log; ``on_change`` runs whenever
    the lease was renewed or synced (outside the lease's lock).
    """

    def __init__(
        self,
        timeout: float,
        bootstrap_servers: str,
        *,
        send: Callable[[bytes], DeliveryFuture],
        fenced: Callable[[], bool],
        epoch: Callable[[], int],
        on_change: Callable[[], None],
    ) -> None:
        self._send = send
        self._fenced = fenced
        self._epoch = epoch
        self._on_change = on_change
        self.lease = Lease(timeout, on_change=self._lease_changed)
        self.reach = Reachability(timeout / 2, bootstrap_servers, self.lease.clock)
        self._said_lapsed = False  # the log said the lease ran out, and not yet that it is back

    def send_heartbeat(self, beat: Heartbeat) -> None:
        """Send one heartbeat; its acknowledgement renews the lease from when it was sent."""
        self._note_lease()
        self.reach.check()
        sent = self.lease.clock()
        future = self._send(beat.encode())
        self.reach.sent(beat.seq, sent)

        def on_answer(f: DeliveryFuture) -> None:
            self.reach.answered(beat.seq)
            if f.exception() is None:
                self.lease.acked(sent)

        future.add_done_callback(on_answer)

    def _note_lease(self) -> None:
        """Say once that the lease ran out (the heartbeat thread looks at every beat)."""
        lapsed = self.lease.lapsed_at()
        if lapsed is None or self._said_lapsed or self._fenced():
            return
        self._said_lapsed = True
        log.warning(
            "lease ran out %.1f s ago: no heartbeat acknowledged in time (this process was "
            "paused or the broker is unreachable) and the monitor may have fenced epoch %d; no "
            "task starts and guarded steps wait until a heartbeat is acknowledged and the "
            "control partition is read to its end",
            self.lease.clock() - lapsed,
            self._epoch(),
        )

    def _lease_changed(self) -> None:
        """The lease was renewed or synced: say when work resumes, then pass it on."""
        if self._said_lapsed and not self._fenced() and self.lease.valid():
            self._said_lapsed = False
            log.warning("lease renewed and no fence found: epoch %d works again", self._epoch())
        self._on_change()
