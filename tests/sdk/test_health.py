"""The broker's reachability as heartbeat acknowledgements show it, and what the log says."""

from __future__ import annotations

import logging

import pytest

from agent_failover.sdk.health import REPEAT_S, Reachability


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    out = [r.getMessage() for r in caplog.records if r.name == "agent_failover.sdk.broker"]
    caplog.clear()
    return out


def test_one_line_when_the_broker_goes_a_reminder_now_and_then_one_when_it_is_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    reach = Reachability(1.5, "broker:9092", clock)
    reach.sent(0, clock.now)
    clock.now += 1.0
    assert reach.check() and reach.reachable  # waiting, but not for long yet
    reach.answered(0)
    reach.sent(1, clock.now)
    clock.now += 2.0
    assert not reach.check() and not reach.reachable
    (gone,) = lines(caplog)
    assert "broker:9092 unreachable" in gone
    for _ in range(10):  # checked every heartbeat while it stays away: no line each time
        reach.sent(2, clock.now)
        clock.now += 0.5
        assert not reach.check()
    assert lines(caplog) == []
    clock.now += REPEAT_S
    assert not reach.check()
    (reminder,) = lines(caplog)
    assert "still unreachable" in reminder
    reach.answered(2)  # answers settle every earlier heartbeat too
    assert reach.reachable and reach.check()
    (back,) = lines(caplog)
    assert "reachable again" in back
    assert lines(caplog) == []


def test_nothing_sent_means_nothing_to_judge() -> None:
    clock = Clock()
    reach = Reachability(1.5, "broker:9092", clock)
    clock.now += 60
    assert reach.check() and reach.reachable
