"""The partitioner matches Kafka's Java default, so SDK and monitor agree on co-partitioning."""

from __future__ import annotations

import pytest

from agent_failover.partitioner import murmur2, partition_for


@pytest.mark.parametrize(
    ("key", "expected"),
    [  # the vectors of Kafka's own UtilsTest.testMurmur2
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_murmur2_matches_kafka(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


def test_partition_for_is_in_range_and_stable() -> None:
    for n in (1, 3, 8, 64):
        for i in range(200):
            p = partition_for(f"agent-{i}", n)
            assert 0 <= p < n
            assert p == partition_for(f"agent-{i}".encode(), n)


def test_partition_for_rejects_zero_partitions() -> None:
    with pytest.raises(ValueError, match="partitions"):
        partition_for("a", 0)
