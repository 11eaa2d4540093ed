"""Produce-to-consume latency on the embedded Tansu broker against the consumer's fetch wait.

Tansu does not wake a waiting fetch when data arrives, so latency follows ``fetch.wait.max.ms``.
Prints p50/p99 for an aiokafka consumer at faust's hard-coded 1500 ms and at the 10 ms the compat
layer sets (agent_failover.broker.compat.TANSU_FETCH_MAX_WAIT_MS). Evidence for docs/tansu.md.

    .venv/bin/python bench/tansu_fetch_wait.py [records]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid

from aiokafka import AIOKafkaConsumer
from confluent_kafka import Producer

from agent_failover.broker.embedded import EmbeddedBroker
from agent_failover.topics import TopicSpec, ensure_topics


async def measure(bootstrap: str, wait_ms: int, records: int) -> list[float]:
    topic = f"lat-{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, specs=[TopicSpec(topic, 1, {}, "latency probe")])
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, fetch_max_wait_ms=wait_ms, auto_offset_reset="latest"
    )
    await consumer.start()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    await consumer.seek_to_end()
    latencies = []
    for i in range(records):
        sent = time.monotonic()
        producer.produce(topic, value=str(i).encode())
        producer.flush()
        while True:
            batch = await consumer.getmany(timeout_ms=5000)
            if any(batch.values()):
                break
        latencies.append((time.monotonic() - sent) * 1000)
        # random phase against the fetch cycle, like real traffic
        await asyncio.sleep((i * 37 % 100) / 1000)
    await consumer.stop()
    return latencies


def main() -> None:
    records = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    with EmbeddedBroker() as broker:
        for wait_ms in (1500, 500, 10):
            lat = sorted(asyncio.run(measure(broker.bootstrap_servers, wait_ms, records)))
            p50 = statistics.median(lat)
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            print(
                f"fetch_max_wait_ms={wait_ms:5d}: p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  "
                f"max {lat[-1]:6.1f} ms  ({records} records)"
            )


if __name__ == "__main__":
    main()
