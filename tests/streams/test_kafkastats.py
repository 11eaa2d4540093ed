"""The heartbeat consumer's librdkafka statistics: when the broker answered, and the lag."""

from __future__ import annotations

import logging

import orjson
import pytest

from agent_failover.streams.kafkastats import parse_stats, stats_handler


def partition(number: int, **offsets: object) -> dict[str, object]:
    base: dict[str, object] = {
        "partition": number,
        "desired": True,
        "hi_offset": -1001,
        "app_offset": -1001,
        "next_offset": 0,
    }
    return {**base, **offsets}


# The shape librdkafka 2.x writes (fields the monitor does not read left out).
STATS = {
    "name": "rdkafka#consumer-1",
    "brokers": {
        "127.0.0.1:9092/1": {"nodeid": 1, "state": "UP", "rxidle": 60316},
        "127.0.0.1:9092/bootstrap": {"nodeid": -1, "state": "INIT", "rxidle": -1},
        "GroupCoordinator": {"nodeid": -1, "state": "UP", "rxidle": 3993450},
    },
    "topics": {
        "x.heartbeats": {
            "topic": "x.heartbeats",
            "partitions": {
                "0": partition(0, hi_offset=44, app_offset=40, next_offset=44),
                "1": partition(1, hi_offset=7),  # nothing handed over yet: from next_offset
                "2": partition(2, desired=False, hi_offset=90),  # not assigned
                "-1": partition(-1, desired=False),  # librdkafka's placeholder
            },
        },
        "x.fleet": {"topic": "x.fleet", "partitions": {"0": partition(0, hi_offset=5)}},
    },
}


def test_the_lag_and_the_last_answer_are_read_from_the_statistics() -> None:
    stats = parse_stats(orjson.dumps(STATS))
    assert stats.answered_ago == pytest.approx(0.060316)
    assert stats.lag == {"x.heartbeats": 4 + 7, "x.fleet": 5}


def test_a_consumer_that_never_heard_a_broker_has_no_answer_time() -> None:
    stats = parse_stats(b'{"brokers": {"b/bootstrap": {"rxidle": -1}}, "topics": {}}')
    assert stats.answered_ago is None and stats.lag == {}


def test_the_handler_reports_on_its_clock_and_skips_what_it_cannot_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answered: list[float] = []
    lags: list[tuple[str, int]] = []
    handler = stats_handler(answered.append, lambda t, n: lags.append((t, n)), lambda: 1000.0)
    handler(orjson.dumps(STATS).decode())
    assert answered == [pytest.approx(1000.0 - 0.060316)]
    assert sorted(lags) == [("x.fleet", 5), ("x.heartbeats", 11)]
    with caplog.at_level(logging.WARNING):
        handler("{not json")
        handler('["a list"]')
    assert len(answered) == 1 and caplog.text.count("unreadable consumer statistics") == 2
