"""Does a consumer group still deliver after heavy membership churn? (evidence for docs/tansu.md)

Plain confluent-kafka consumers, one process each, in one cooperative-sticky group on an
8-partition topic. Every 3.5 s the oldest member is stopped (the first ``--kills`` with SIGKILL,
the rest with SIGTERM, which leaves the group cleanly) and a new member joins. Then 16 records
are produced and the script reports how many the group delivered within 40 s.

Run: ``.venv/bin/python -m bench.tansu_group_churn --rounds 30 --kills 25``. Uses the broker
``KAFKA_BOOTSTRAP_SERVERS`` names, else an embedded Tansu.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer

from agent_failover.broker.select import broker_from_env
from agent_failover.dev.processes import Proc, spawn, stop_all
from agent_failover.dev.waiting import eventually
from agent_failover.topics import TopicSpec, ensure_topics

MEMBER = """
import sys, time, signal
from confluent_kafka import Consumer
bs, topic, group, name = sys.argv[1:5]
c = Consumer({"bootstrap.servers": bs, "group.id": group, "session.timeout.ms": 6000,
              "partition.assignment.strategy": "cooperative-sticky",
              "enable.auto.commit": False, "auto.offset.reset": "earliest"})
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
c.subscribe([topic])
while not stop:
    m = c.poll(0.05)
    if m is not None and not m.error():
        print(f"{name} got {m.partition()}", flush=True)
        c.commit(m, asynchronous=False)
c.close()
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="members replaced")
    parser.add_argument("--kills", type=int, default=25, help="of which SIGKILLed (rest SIGTERM)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="af-churn-"))
    out = work / "members.log"
    with broker_from_env(log_dir=work) as broker, out.open("w") as log:
        topic, group = f"churn-{uuid.uuid4().hex[:6]}", f"churn-{uuid.uuid4().hex[:6]}"
        ensure_topics(broker.bootstrap_servers, specs=[TopicSpec(topic, 8, {}, "churn")])
        count = 0

        def start() -> Proc:
            nonlocal count
            count += 1
            name = f"m{count}"
            args = ["-c", MEMBER, broker.bootstrap_servers, topic, group, name]
            # What members print goes to one shared file, their own logs apart.
            return spawn(name, args, work / f"{name}.log", stdout=log)

        members = [start() for _ in range(3)]
        time.sleep(8)  # let the first group form (about 3 s per join on Tansu)
        for i in range(args.rounds):
            old = members.pop(0)
            old.signal(signal.SIGKILL if i < args.kills else signal.SIGTERM)
            old.wait(30)
            members.append(start())
            time.sleep(3.5)  # the churn rate under test
        time.sleep(5)
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
        for i in range(16):
            producer.produce(topic, value=f"r{i}".encode(), partition=i % 8)
        producer.flush(10)
        sent = time.monotonic()

        def delivered() -> int:
            return out.read_text().count(" got ")

        with contextlib.suppress(TimeoutError):  # fewer is the finding, not an error
            eventually(lambda: delivered() >= 16, 40, "16 records delivered", interval=0.5)
        print(
            f"{args.rounds} members replaced ({args.kills} SIGKILL, "
            f"{args.rounds - args.kills} SIGTERM): {delivered()} of 16 records delivered "
            f"within {time.monotonic() - sent:.1f} s"
        )
        stop_all(members, 10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
