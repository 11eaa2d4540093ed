"""The partitioner matches Kafka's Java default, so SDK and monitor agree on co-partitioning.

``partition_for`` uses librdkafka's murmur2; it is checked against an independent reference: the
hash values of Kafka's own Java test, and a slow pure-Python murmur2 kept here only.
"""

from __future__ import annotations

import random

import pytest

from agent_failover.partitioner import partition_for

#: The vectors of Kafka's own UtilsTest.testMurmur2 (Java's signed 32-bit hash values).
JAVA_MURMUR2 = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def reference_murmur2(data: bytes) -> int:
    """Kafka's murmur2 (seed 0x9747b28c), as a signed 32-bit integer like Java's; slow."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    n4 = length // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i : 4 * i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    tail = length & 3
    base = n4 * 4
    if tail == 3:
        h ^= data[base + 2] << 16
    if tail >= 2:
        h ^= data[base + 1] << 8
    if tail >= 1:
        h ^= data[base]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


@pytest.mark.parametrize(("key", "expected"), JAVA_MURMUR2)
def test_the_reference_matches_kafka(key: bytes, expected: int) -> None:
    assert reference_murmur2(key) == expected


@pytest.mark.parametrize(
    ("key", "partitions"),
    [  # computed by hand from the Java hash values above: (hash & 0x7fffffff) % n
        (b"21", [0, 0, 4, 44]),
        (b"foobar", [0, 0, 6, 62]),
        (b"a-little-bit-long-string", [0, 2, 0, 32]),
        (b"a-little-bit-longer-string", [0, 2, 3, 3]),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", [0, 2, 5, 13]),
        (b"abc", [0, 0, 3, 27]),
    ],
)
def test_partition_for_matches_kafka(key: bytes, partitions: list[int]) -> None:
    assert [partition_for(key, n) for n in (1, 3, 8, 64)] == partitions


def test_partition_for_agrees_with_the_reference_on_many_keys() -> None:
    rng = random.Random(20_000)  # fixed seed: the same keys every run
    keys = [b"", b"\x00", b"\xff" * 7] + [
        rng.randbytes(rng.randrange(0, 48)) for _ in range(20_000)
    ]
    keys += [f"agent-{i}".encode() for i in range(2_000)]
    # Java: Utils.toPositive(Utils.murmur2(key)) % numPartitions; the slow part, once per key.
    positive = [(k, reference_murmur2(k) & 0x7FFFFFFF) for k in keys]
    for n in (1, 7, 8, 64, 1000):
        mismatches = [k for k, h in positive if partition_for(k, n) != h % n]
        assert mismatches == [], f"{len(mismatches)} mismatches with {n} partitions"


def test_partition_for_takes_text_as_utf8() -> None:
    for key in ("agent-1", "ağent-ü", "エージェント"):
        assert partition_for(key, 8) == partition_for(key.encode(), 8)


def test_partition_for_rejects_zero_partitions() -> None:
    with pytest.raises(ValueError, match="partitions"):
        partition_for("a", 0)
