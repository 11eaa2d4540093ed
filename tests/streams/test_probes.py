"""What /healthz and /readyz answer, from the ticks and the broker's answers (a test clock)."""

from __future__ import annotations

import pytest

from agent_failover.streams.monitor import Skipped, TickReport
from agent_failover.streams.probes import BROKER_LIMIT, LOOP_LIMIT, STARTUP_LIMIT, Probes, not_ready


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def ready_probes() -> tuple[Probes, Clock]:
    clock = Clock()
    probes = Probes(clock)
    probes.broker_answered(clock.now)
    probes.tick(clock.now, None, 3)
    return probes, clock


def test_alive_while_starting_then_only_while_ticks_come() -> None:
    clock = Clock()
    probes = Probes(clock)
    assert probes.alive().ok and "starting" in probes.alive().reason
    clock.now += STARTUP_LIMIT + 1
    assert not probes.alive().ok and "no detection tick" in probes.alive().reason
    probes.tick(clock.now, None, 0)
    assert probes.alive().ok
    clock.now += LOOP_LIMIT + 1
    verdict = probes.alive()
    assert not verdict.ok and "event loop blocked" in verdict.reason


def test_ready_once_ticks_say_so_and_the_broker_answers() -> None:
    probes, clock = ready_probes()
    assert probes.ready().ok and probes.ready().reason == "ready: 3 agent partition(s) owned"
    assert probes.broker_up()
    clock.now += BROKER_LIMIT + 1
    probes.tick(clock.now, None, 3)
    verdict = probes.ready()
    assert not verdict.ok and verdict.reason == "broker unreachable: no answer for 11 s"
    assert not probes.broker_up()
    probes.broker_answered(clock.now - 1)
    assert probes.ready().ok
    probes.tick(clock.now, "grace period: 1.0 s left before failures are declared", 3)
    assert probes.ready().reason.startswith("grace period")


def test_not_ready_before_a_tick_or_an_answer_and_while_the_loop_is_blocked() -> None:
    clock = Clock()
    probes = Probes(clock)
    assert probes.ready().reason == "broker unreachable: no answer yet"
    probes.broker_answered(clock.now)
    assert probes.ready().reason == "starting: no detection tick yet"
    probes.tick(clock.now, None, 1)
    clock.now += LOOP_LIMIT + 1
    probes.broker_answered(clock.now)
    assert probes.ready().reason.startswith("event loop blocked")


@pytest.mark.parametrize(
    ("report", "assigned", "grace", "reason"),
    [
        (TickReport(), False, 0.0, "partitions not assigned yet"),
        (TickReport(skipped=Skipped.BUSY), True, 0.0, "rebalancing or recovering tables"),
        (TickReport(skipped=Skipped.STALLED), True, 0.0, "stalled"),
        (TickReport(skipped=Skipped.ASSIGNING), True, 0.0, "heartbeat reader does not read"),
        (TickReport(), True, 2.25, "grace period: 2.2 s left"),
        (TickReport(), True, 0.0, None),
        (TickReport(skipped=Skipped.UNOWNED), True, 0.0, None),  # a spare worker is ready
    ],
)
def test_why_a_tick_leaves_the_worker_not_ready(
    report: TickReport, assigned: bool, grace: float, reason: str | None
) -> None:
    got = not_ready(report, assigned=assigned, grace_left=grace)
    if reason is None:
        assert got is None
    else:
        assert got is not None and reason in got
