"""Kafka's default (Java) partitioner, so every client agrees where an agent's records live.

librdkafka clients get the same placement with ``partitioner=murmur2_random``; aiokafka and faust
use it by default. The SDK uses :func:`partition_for` to find its own partition of ``control`` and
``tasks.priority``. The hash is librdkafka's own (``confluent_kafka.murmur2``, confluent-kafka
2.13 and later): the very code that places the SDK's writes.
"""

from __future__ import annotations

from confluent_kafka import murmur2


def partition_for(key: str | bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` among ``partitions``."""
    if partitions < 1:
        raise ValueError("partitions must be >= 1")
    raw = key.encode() if isinstance(key, str) else key
    return murmur2(raw, partitions)
