"""End to end: a burst of hostile records on every topic, then a normal failover.

A live monitor and agents (processes, a signing fleet, the development broker) receive records
from :mod:`tests.fuzz.hostile` that every reader refuses, on all ten topics: values and keys up
to the record limit, nesting up to 1,025 levels, integers beyond 64 bits, lone surrogates,
tombstones, wrong types and partitions, records signed by a stranger. Nothing may stop: the
monitor sets aside each record it reads, an agent each one addressed to it, both count them, and
then an agent is killed and its tasks resume elsewhere, each step committed exactly once and
each task's outcome published (the ledger skips what nobody could read).

Hypothesis draws the burst, eight records per topic (the same ones every run;
AGENT_FAILOVER_FUZZ_EXAMPLES draws more), and the properties hold for all of them at once: a
scenario per example would take hours.
"""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Producer
from hypothesis import strategies as st

from agent_failover import models as m
from agent_failover.config import Topics
from agent_failover.dev.reading import Rec, TopicTail
from agent_failover.errors import CodecError
from agent_failover.partitioner import partition_for
from agent_failover.signing import Signer
from agent_failover.streams.assign import invalid_decision
from tests.fuzz.hostile import (
    STRANGER,
    Raw,
    agent_id_of,
    agent_letters,
    checkpoints,
    controls,
    heartbeats,
    hostile,
    outcomes,
    redispatches,
    refused,
    sample,
    summaries,
    task_events,
    tasks,
)
from tests.integration.conftest import Scenario
from tests.streams.test_metrics_broker import scrape

pytestmark = [pytest.mark.broker, pytest.mark.slow]

AGENTS = ["agent-a", "agent-b", "agent-c"]
#: The scenario's partition counts (tests/integration/conftest.py).
SHAPE = Topics(agent_partitions=4, task_partitions=4, checkpoint_partitions=4)
#: Topics the monitor sets aside every bad record of (checkpoints it never reads, outcomes it only
#: writes, dead letters it only counts).
MONITOR_READS = (
    "heartbeats",
    "task-events",
    "control",
    "tasks.priority",
    "tasks",
    "tasks.assigned",
    "fleet",
)


def on(
    topic: str,
    valid: st.SearchStrategy[m.Record],
    cls: type[m.Record],
    key_of: Callable[[Any], str],
    partitions: int,
    agent_keyed: bool = False,
    also: Callable[[Any, Raw], bool] = lambda _r, _raw: False,
) -> st.SearchStrategy[tuple[str, Raw, bool]]:
    """Records of the logical ``topic`` every reader refuses, each maybe signed by a stranger."""

    def partition_of(key: bytes) -> int:
        return partition_for(key, partitions)

    raws = hostile(valid, key_of, partition_of, partitions).filter(
        lambda raw: refused(cls, raw, partitions if agent_keyed else None, also)
    )
    return st.tuples(st.just(topic), raws, st.integers(0, 11).map(lambda n: n == 0))


def no_decision(record: m.Redispatch, raw: Raw) -> bool:
    return invalid_decision(record, raw.partition) is not None


ours = st.sampled_from(AGENTS)
A, T = SHAPE.agent_partitions, SHAPE.task_partitions
#: Per topic, the records every reader refuses.
HOSTILE = (
    on("heartbeats", heartbeats(ours), m.Heartbeat, agent_id_of, A, agent_keyed=True),
    on("task-events", task_events(ours), m.TaskEvent, agent_id_of, A, agent_keyed=True),
    on("control", controls(ours), m.Control, agent_id_of, A, agent_keyed=True),
    on("tasks.priority", redispatches(ours), m.Redispatch, agent_id_of, A, agent_keyed=True),
    on("tasks", tasks(), m.Task, lambda t: t.task_id, T),
    on(
        "tasks.assigned",
        redispatches(ours, new=True),
        m.Redispatch,
        lambda r: r.task_id,
        T,
        also=no_decision,
    ),
    on("checkpoints", checkpoints(), m.Checkpoint, lambda c: c.task_id, 4),
    on("outcomes", outcomes(), m.TaskOutcome, lambda o: o.task_id, T),
    on("fleet", summaries(), m.FleetSummary, lambda s: s.monitor_id, 1),
    on("dead-letter", agent_letters(), m.DeadLetter, lambda d: d.key or "k", 1),
)
#: Records per topic in the burst.
PER_TOPIC = 8


def produce(s: Scenario, burst: list[tuple[str, Raw, bool]]) -> list[tuple[str, int, int]]:
    """Write the burst, signed by the fleet (or the stranger); where each record landed."""
    fleet: Signer = s.kafka.signer
    producer = Producer(
        {
            "bootstrap.servers": s.kafka.bootstrap_servers,
            "message.max.bytes": 1_048_576,  # as near the brokers' 1 MiB as a client may go
            "linger.ms": 5,
        }
    )
    # Delivery reports come in no particular order across partitions: each fills its own slot.
    landed: list[tuple[str, int, int] | None] = [None] * len(burst)
    for n, (topic, raw, forged) in enumerate(burst):
        name = f"{s.topics.prefix}{topic}"
        headers = (STRANGER if forged else fleet).headers(name, raw.key, raw.value)

        def delivered(err: Any, msg: Any, n: int = n, topic: str = topic) -> None:
            assert err is None, err
            landed[n] = (topic, msg.partition(), msg.offset())

        producer.produce(
            name,
            raw.value,
            raw.key,
            partition=raw.partition,
            headers=headers,
            on_delivery=delivered,
        )
        producer.poll(0)
    assert producer.flush(60) == 0
    done = [where for where in landed if where is not None]
    assert len(done) == len(burst), "a delivery report is missing"
    return done


def metrics_base(s: Scenario) -> str | None:
    found = re.search(
        r"metrics and probes on (http://[\w.:]+)", s.cluster.procs["monitor"].log_tail(400)
    )
    return found.group(1) if found else None


def counted(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], source: str) -> float:
    return sum(
        v
        for (name, labels), v in samples.items()
        if name == "agent_failover_dead_letters_total" and ("source", source) in labels
    )


class Letters:
    """The dead letters read so far (from the tail's thread): where each record set aside lay,
    by who set it aside."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._lock = threading.Lock()
        self._by: dict[str, set[tuple[str, int, int]]] = {"monitor": set(), "agent": set()}
        #: Letters that say nothing of why.
        self.without_reason: list[tuple[str, int, int]] = []

    def add(self, records: list[Rec]) -> None:
        for rec in records:
            try:
                letter = m.DeadLetter.decode(rec.value or b"")
            except CodecError:
                continue  # the burst's own records on the dead-letter topic
            if letter.source is None:
                continue
            where = (letter.topic.removeprefix(self._prefix), letter.partition, letter.offset)
            with self._lock:
                self._by[letter.source.value].add(where)
                if not letter.reason:
                    self.without_reason.append(where)

    def seen(self) -> tuple[set[tuple[str, int, int]], set[tuple[str, int, int]]]:
        """Where the records lay that the monitor, and agents, set aside."""
        with self._lock:
            return set(self._by["monitor"]), set(self._by["agent"])


def test_a_burst_of_hostile_records_on_every_topic_stops_nothing(
    scenario_factory: Callable[..., Scenario],
) -> None:
    burst = [record for records in HOSTILE for record in sample(records, PER_TOPIC)]
    assert {topic for topic, _, _ in burst} == set(MONITOR_READS) | {
        "checkpoints",
        "outcomes",
        "dead-letter",
    }
    s = scenario_factory()
    monitor = s.cluster.start_monitor()
    procs = s.start_agents(AGENTS)
    s.wait_monitor_ready()
    s.submit(6, steps=10)
    landed = produce(s, burst)

    # The monitor sets aside every record it reads; an agent every one addressed to it, in its
    # partition. Both count them: the monitor its own, and the agents' read back.
    expected_monitor = {(t, p, o) for t, p, o in landed if t in MONITOR_READS}
    expected_agent = set()
    for (topic, raw, _), where in zip(burst, landed, strict=True):
        mine = raw.key is not None and raw.key.decode(errors="replace") in AGENTS
        if topic in ("control", "tasks.priority") and mine:
            assert raw.key is not None
            if partition_for(raw.key, SHAPE.agent_partitions) == raw.partition:
                expected_agent.add(where)

    letters = Letters(s.topics.prefix)
    with TopicTail(s.kafka, [s.topics.dead_letter], on_records=letters.add, keep=False) as tail:

        def all_set_aside() -> bool:
            if tail.error is not None:
                raise tail.error
            monitor_seen, agent_seen = letters.seen()
            return monitor_seen >= expected_monitor and agent_seen >= expected_agent

        try:
            s.wait(all_set_aside, 120, "a dead letter for every hostile record read")
        except AssertionError as exc:
            monitor_seen, agent_seen = letters.seen()
            missing = {
                "monitor": sorted(expected_monitor - monitor_seen),
                "agent": sorted(expected_agent - agent_seen),
            }
            raise AssertionError(f"{exc}\nnot set aside: {missing}") from None
    by_monitor, by_agent = letters.seen()
    assert letters.without_reason == []
    assert by_monitor == expected_monitor
    assert by_agent == expected_agent
    base = s.wait(lambda: metrics_base(s), 30, "the monitor's metrics address")
    s.wait(
        lambda: (
            (now := scrape(base)[1])
            and counted(now, "monitor") == len(by_monitor)
            and counted(now, "agent") == len(by_agent)
        ),
        60,
        "the monitor counting every dead letter once",
    )
    assert monitor.alive and all(p.alive for p in procs.values())

    # Then a normal failover, end to end.
    victim = s.busy_agent(AGENTS, min_step=2)
    procs[victim].signal(signal.SIGKILL)
    s.wait_all_completed(timeout=120)
    assert monitor.alive and all(p.alive for a, p in procs.items() if a != victim)
    report = s.ledger()
    assert report.problems() == [] and report.ok
