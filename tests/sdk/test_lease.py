"""The agent's lease on a clock the test drives: when it is valid, when it lapses, and what it
takes to act again after a lapse (a renewal, then a read of the control partition)."""

from __future__ import annotations

import threading

import pytest

from agent_failover.sdk.lease import MARGIN_SHARE, Lease

TIMEOUT = 3.0
MARGIN = TIMEOUT * MARGIN_SHARE


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def lease(clock: Clock, changes: list[str] | None = None) -> Lease:
    return Lease(
        TIMEOUT,
        clock=clock,
        on_change=None if changes is None else (lambda: changes.append("changed")),
    )


def test_not_valid_before_the_first_acknowledgement(clock: Clock) -> None:
    assert not lease(clock).valid()


def test_an_acknowledged_heartbeat_gives_the_timeout_minus_the_margin_from_its_sending(
    clock: Clock,
) -> None:
    lz = lease(clock)
    sent = clock.now
    clock.now += 0.4  # the acknowledgement took its time: the lease counts from the sending
    lz.acked(sent)
    assert lz.valid()
    assert lz.remaining() == pytest.approx(TIMEOUT - MARGIN - 0.4)
    clock.now = sent + TIMEOUT - MARGIN - 0.001
    assert lz.valid()
    clock.now = sent + TIMEOUT - MARGIN
    assert not lz.valid() and lz.remaining() == 0.0


def test_a_lapse_is_noticed_by_the_next_acknowledgement_even_if_nobody_looked(
    clock: Clock,
) -> None:
    # Frozen past the lease, woken, and a fresh heartbeat acknowledged before anyone asked:
    # the gap still counts, and the control partition must be read before acting again.
    lz = lease(clock)
    lz.acked(clock.now)
    clock.now += TIMEOUT + 2
    lz.acked(clock.now)
    assert not lz.valid()
    assert lz.needs_sync()


def test_after_a_lapse_a_renewal_alone_is_not_enough(clock: Clock) -> None:
    lz = lease(clock)
    lz.acked(clock.now)
    clock.now += TIMEOUT
    assert not lz.valid() and not lz.needs_sync()
    renewed = clock.now
    lz.acked(renewed)
    assert not lz.valid() and lz.needs_sync()
    # A read of the control partition that began before the renewal proves nothing.
    assert not lz.synced(renewed - 0.01)
    assert not lz.valid()
    clock.now += 0.05
    assert lz.synced(clock.now)
    assert lz.valid() and not lz.needs_sync()


def test_a_late_acknowledgement_of_an_old_heartbeat_does_not_renew(clock: Clock) -> None:
    lz = lease(clock)
    sent = clock.now
    lz.acked(sent)
    clock.now += TIMEOUT  # lapsed; then the broker answers a heartbeat whose lease ran out too
    lz.acked(sent + 0.2)
    assert not lz.needs_sync()  # nothing renewed: its lease had run out when acknowledged
    assert not lz.valid()


def test_a_lease_that_runs_out_during_the_read_must_be_renewed_again(clock: Clock) -> None:
    lz = lease(clock)
    lz.acked(clock.now)
    clock.now += TIMEOUT
    lz.acked(clock.now)
    started = clock.now
    clock.now += TIMEOUT  # the renewal ran out too before the read ended
    assert not lz.synced(started)
    assert not lz.valid()
    assert not lz.needs_sync()  # the next renewal asks for a new read
    lz.acked(clock.now)
    assert lz.needs_sync()


def test_changes_are_reported_and_wake_a_waiter(clock: Clock) -> None:
    changes: list[str] = []
    lz = lease(clock, changes)
    lz.acked(clock.now)
    assert changes == ["changed"]
    clock.now += TIMEOUT
    results: list[bool] = []
    stop = threading.Event()
    waiter = threading.Thread(target=lambda: results.append(lz.wait(stop.is_set, None)))
    waiter.start()
    lz.acked(clock.now)
    assert lz.synced(clock.now)
    waiter.join(30)
    assert results == [True]
    assert changes == ["changed", "changed", "changed"]


def test_a_wait_ends_when_its_condition_holds(clock: Clock) -> None:
    lz = lease(clock)
    ended = threading.Event()
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(lz.wait(ended.is_set, None)))
    waiter.start()
    ended.set()
    lz.wake()
    waiter.join(30)
    assert results == [False]


def test_a_bounded_wait_gives_up(clock: Clock) -> None:
    # The clock does not move: the wait's own bound (real time) ends it.
    assert lease(clock).wait(lambda: False, 0.01) is False
