"""A simulated fleet: many agents in one process, beating at 1 Hz through one batching producer.

Each simulated agent announces itself with ``task_event{agent_started}`` and then sends a
``heartbeat`` every ``interval`` seconds, keyed by agent id with the Java-compatible partitioner
(``murmur2_random``); the beats of all agents are spread evenly over the interval and go through
one producer with ``linger.ms`` batching, so the broker sees large batches (a producer per
simulated agent would measure Tansu's per-request cost, not the monitor).

Controlled by lines on stdin, answers JSON lines on stdout::

    add N      -> {"added": N, "agents": total}
    kill K     -> {"killed": [{"agent_id", "epoch", "last_sent"}, ...]}  (they stop beating)
    stats      -> {"sent": total heartbeats, "rate": per second over the last stats call, ...}
    quit

Run as ``python -m bench.fleet BOOTSTRAP TOPIC_PREFIX FLEET_ID [INTERVAL]``.
"""

from __future__ import annotations

import random
import select
import sys
import time
from typing import Any

import orjson
from confluent_kafka import Producer

from agent_failover import models as m


def main(argv: list[str]) -> int:
    bootstrap, prefix, fleet_id = argv[:3]
    interval = float(argv[3]) if len(argv) > 3 else 1.0
    hb_topic, ev_topic = f"{prefix}heartbeats", f"{prefix}task-events"
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 1_000_000,
            "compression.type": "none",
            "acks": 1,
        }
    )
    # agent index -> [agent_id, epoch, seq, next_due, alive, last_sent]
    agents: list[list[Any]] = []
    sent = 0
    last_stats = (time.monotonic(), 0)
    slots = 50  # beats are spread over `slots` ticks per interval
    tick = interval / slots
    next_tick = time.monotonic()
    tick_no = 0

    def reply(obj: Any) -> None:
        sys.stdout.write(orjson.dumps(obj).decode() + "\n")
        sys.stdout.flush()

    def add(n: int) -> None:
        now = time.time()
        for _ in range(n):
            agent_id = f"{fleet_id}-{len(agents)}"
            epoch = time.time_ns() + len(agents)
            ev = m.TaskEvent(
                kind=m.EventKind.AGENT_STARTED,
                agent_id=agent_id,
                epoch=epoch,
                at=now,
                capacity=4,
                pool=m.Pool.ACTIVE,
            )
            _produce(producer, ev_topic, agent_id.encode(), ev.encode())
            agents.append([agent_id, epoch, 0, random.randrange(slots), True, 0.0])
        producer.flush(30)

    while True:
        # Commands, without blocking the beat schedule.
        ready, _, _ = select.select([sys.stdin], [], [], max(0.0, next_tick - time.monotonic()))
        if ready:
            line = sys.stdin.readline()
            if not line:
                break
            cmd, *args = line.split()
            if cmd == "add":
                add(int(args[0]))
                reply({"added": int(args[0]), "agents": len(agents)})
            elif cmd == "kill":
                alive = [a for a in agents if a[4]]
                victims = random.sample(alive, min(int(args[0]), len(alive)))
                for a in victims:
                    a[4] = False
                reply(
                    {
                        "killed": [
                            {"agent_id": a[0], "epoch": a[1], "last_sent": a[5]} for a in victims
                        ]
                    }
                )
            elif cmd == "stats":
                now_m = time.monotonic()
                rate = (sent - last_stats[1]) / max(1e-6, now_m - last_stats[0])
                last_stats = (now_m, sent)
                reply({"sent": sent, "rate": rate, "agents": len(agents), "queued": len(producer)})
            elif cmd == "quit":
                break
            continue
        if time.monotonic() < next_tick:
            continue
        next_tick += tick
        if next_tick < time.monotonic() - 1.0:  # fell behind by a second: do not burst
            next_tick = time.monotonic()
        slot = tick_no % slots
        tick_no += 1
        now = time.time()
        for a in agents:
            if a[3] != slot or not a[4]:
                continue
            value = orjson.dumps(
                {
                    "agent_id": a[0],
                    "epoch": a[1],
                    "seq": a[2],
                    "sent_at": now,
                    "interval_s": interval,
                    "capacity": 4,
                    "in_flight": [],
                    "pool": "active",
                    "draining": False,
                    "schema_version": 1,
                }
            )
            _produce(producer, hb_topic, a[0].encode(), value)
            a[2] += 1
            a[5] = now
            sent += 1
        producer.poll(0)
    producer.flush(10)
    return 0


def _produce(producer: Producer, topic: str, key: bytes, value: bytes) -> None:
    try:
        producer.produce(topic, value, key)
    except BufferError:
        producer.poll(0.1)
        producer.produce(topic, value, key)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
