"""How far the heartbeat reader trails its partitions: records and seconds, from its position
and the fetched high watermarks (no Kafka: the observations are plain numbers)."""

from __future__ import annotations

from agent_failover.streams.catchup import CatchUp, PartitionLag


def test_a_partition_is_caught_up_once_read_to_a_high_watermark_fetched_since_assigned() -> None:
    lag = CatchUp()
    lag.assign({0, 1})
    assert lag.caught_up == frozenset()
    assert lag.lag(10.0) == {0: PartitionLag(None, None), 1: PartitionLag(None, None)}
    lag.observe(0, None, 50, 10.0)  # a high watermark left from an earlier assignment: ignored
    lag.observe(0, 40, 55, 10.1)  # first records of this assignment, more to read
    assert lag.caught_up == frozenset()
    lag.observe(0, 55, 60, 10.2)  # reached what the broker had at 10.1
    assert lag.caught_up == {0}
    assert lag.lag(10.3) == {0: PartitionLag(5, 10.3 - 10.1), 1: PartitionLag(None, None)}
    lag.observe(1, 0, 0, 10.3)  # an empty partition read to its end
    assert lag.caught_up == {0, 1}


def test_the_lag_in_seconds_grows_with_a_backlog_and_drops_as_it_is_read() -> None:
    lag = CatchUp()
    lag.assign({0})
    lag.observe(0, 100, 100, 1.0)
    assert lag.behind(1.0) == 0.0
    for n in range(1, 11):  # the broker gains 1,000 records a poll, the reader reads 500
        lag.observe(0, 100 + 500 * n, 100 + 1000 * n, 1.0 + n * 0.1)
    # Position 5,100 passed the high watermark seen at 1.5 (5,100), not the one seen at 1.6.
    assert lag.behind(2.0) == 2.0 - 1.5
    assert lag.lag(2.0)[0].records == 5000
    lag.observe(0, 10_100, 10_100, 2.1)  # read everything: nothing behind
    assert lag.behind(2.1) == 0.0 and lag.lag(2.1)[0] == PartitionLag(0, 0.0)


def test_keeping_up_with_a_busy_partition_is_not_lagging() -> None:
    lag = CatchUp()
    lag.assign({0})
    # Each poll reads what the previous fetch returned while the next one brings more.
    for n in range(1, 50):
        lag.observe(0, 200 * (n - 1), 200 * n, n * 0.1)
    assert lag.behind(4.9) <= 0.1 + 1e-9


def test_when_marks_run_out_the_lag_reads_high_never_low() -> None:
    lag = CatchUp(max_marks=3)
    lag.assign({0})
    lag.observe(0, 0, 0, 0.0)
    for n in range(1, 10):
        lag.observe(0, 0, 10 * n, float(n))  # falling behind: only the first 3 marks are kept
    lag.observe(0, 85, 100, 10.0)  # past every kept mark (30, at 3.0), short of the others
    assert lag.behind(10.0) == 10.0 - 3.0


def test_a_partition_given_up_and_taken_again_starts_unknown() -> None:
    lag = CatchUp()
    lag.assign({0})
    lag.observe(0, 5, 5, 1.0)
    lag.assign(set())
    assert lag.caught_up == frozenset() and lag.lag(2.0) == {}
    lag.assign({0})
    assert lag.caught_up == frozenset() and lag.lag(2.0) == {0: PartitionLag(None, None)}
    lag.observe(3, 1, 1, 2.0)  # not assigned: ignored
    assert lag.lag(2.0) == {0: PartitionLag(None, None)}
