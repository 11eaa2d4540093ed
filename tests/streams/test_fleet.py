"""The fleet directory: what other workers vouch for, when to stop trusting it, planning with it."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agent_failover.config import KafkaConfig, Topics
from agent_failover.models import (
    FleetAgent,
    FleetSummary,
    PlanEntry,
    Pool,
)
from agent_failover.partitioner import partition_for
from agent_failover.streams.dispatch import Candidate, plan_moves
from agent_failover.streams.fleet import (
    EXPIRE_AFTER,
    FleetDirectory,
    Received,
    best_targets,
    encode_summary,
    remote_candidates,
    summarize,
    with_remote,
)
from agent_failover.streams.liveness import LivenessTracker
from tests.inmemory import MemoryProducer
from tests.streams.factories import slot

PARTITIONS = 4


def agent_in(partition: int) -> str:
    """An agent id whose key hashes to ``partition`` (ids sort in partition order)."""
    return next(
        f"p{partition}-{n}"
        for n in range(1000)
        if partition_for(f"p{partition}-{n}", PARTITIONS) == partition
    )


A0, A1, A2, A3 = (agent_in(p) for p in range(PARTITIONS))


def fa(
    agent: str, *, cap: int = 2, load: int = 0, pool: Pool = Pool.ACTIVE, **kw: Any
) -> FleetAgent:
    return FleetAgent(agent_id=agent, epoch=7, capacity=cap, in_flight=load, pool=pool, **kw)


def summary(monitor: str, partitions: tuple[int, ...], *agents: FleetAgent) -> FleetSummary:
    return FleetSummary(monitor_id=monitor, at=0.0, partitions=partitions, agents=agents)


def remote(*received: Received, now: float = 10.0, owned: tuple[int, ...] = ()) -> list[str]:
    got = remote_candidates(received, now=now, owned=owned, partitions=PARTITIONS, self_id="me")
    return [c.agent_id for c in got]


def test_summary_lists_own_candidates_with_reservations_as_load() -> None:
    local = [Candidate("b", 3, Pool.ACTIVE, 4, 1), Candidate("a", 2, Pool.STANDBY, 2, 0)]
    s = summarize("me", {3, 1}, local, {("b", 3): 2, ("x", 1): 5}, at=99.0)
    assert (s.monitor_id, s.at, s.partitions) == ("me", 99.0, (1, 3))
    assert s.agents == (
        FleetAgent("a", 2, 2, 0, Pool.STANDBY),
        FleetAgent("b", 3, 4, 3),  # one in flight + two just placed there by this worker
    )


def test_remote_agents_become_candidates_with_their_load() -> None:
    r = Received(summary("w2", (1, 2), fa(A1, cap=3, load=1), fa(A2, pool=Pool.STANDBY)), 9.0)
    got = remote_candidates([r], now=10.0, owned=(0,), partitions=PARTITIONS, self_id="me")
    assert got == [Candidate(A1, 7, Pool.ACTIVE, 3, 1), Candidate(A2, 7, Pool.STANDBY, 2, 0)]


def test_summaries_expire_by_time_of_receipt_not_by_the_publisher_clock() -> None:
    old = FleetSummary(monitor_id="w2", at=1e12, partitions=(1,), agents=(fa(A1),))
    assert remote(Received(old, 10.0 - EXPIRE_AFTER)) == []
    assert remote(Received(old, 10.0 - EXPIRE_AFTER + 0.1)) == [A1]


def test_own_partitions_and_own_summaries_are_ignored() -> None:
    other = Received(summary("w2", (0, 1), fa(A0), fa(A1)), 9.0)
    assert remote(other, owned=(0,)) == [A1]  # the reader's live view of partition 0 wins
    mine = Received(summary("me", (2,), fa(A2)), 9.0)
    assert remote(mine) == []


def test_the_newest_claim_of_a_partition_wins() -> None:
    # w1 lost partition 1 to w2 and has not republished yet: its view of it is not trusted.
    stale = Received(summary("w1", (0, 1), fa(A0), fa(A1, load=0)), 9.0)
    fresh = Received(summary("w2", (1,), fa(A1, load=2)), 9.5)
    got = remote_candidates([fresh, stale], now=10.0, owned=(), partitions=PARTITIONS, self_id="me")
    assert [(c.agent_id, c.in_flight) for c in got] == [(A0, 0), (A1, 2)]
    # w2 claims partition 1 without listing A1 (not healthy there): w1's entry does not revive it.
    empty = Received(summary("w2", (1,), fa(A2)), 9.5)
    assert remote(stale, empty) == [A0]


def test_agents_outside_the_claimed_partitions_or_draining_are_ignored() -> None:
    r = Received(summary("w2", (1,), fa(A1, draining=True), fa(A3)), 9.0)
    assert remote(r) == []


def test_directory_keeps_the_newest_summary_per_worker_and_forgets_silent_ones() -> None:
    d = FleetDirectory("me", PARTITIONS)
    d.receive(summary("w2", (1,), fa(A1)), 1.0)
    d.receive(summary("w3", (2,), fa(A2)), 1.0)
    d.receive(summary("w2", (1, 3), fa(A3)), 1.2)  # replaces w2's previous summary
    assert [c.agent_id for c in d.candidates(1.3, owned=(0,))] == [A2, A3]
    d.receive(summary("w2", (1, 3)), 1.0 + EXPIRE_AFTER + 0.1)  # w3 silent too long
    assert d.candidates(1.0 + EXPIRE_AFTER + 0.1, owned=(0,)) == []
    assert list(d._latest) == ["w2"]


def test_planning_spans_own_and_remote_agents() -> None:
    local = [Candidate("mine", 1, Pool.ACTIVE, 2, 1)]
    far = [
        Candidate("mine", 9, Pool.ACTIVE, 9, 0),  # same id as a local agent: the local view wins
        Candidate("r-active", 2, Pool.ACTIVE, 4, 0),
        Candidate("r-standby", 3, Pool.STANDBY, 1, 0),
    ]
    pool = with_remote(local, far)
    assert [c.key for c in pool] == [("mine", 1), ("r-active", 2), ("r-standby", 3)]
    plan = plan_moves([slot("t-1"), slot("t-2"), slot("t-3")], pool)
    assert [e.target_agent_id for e in plan] == ["r-standby", "r-active", "r-active"]
    # A reservation on a remote agent (placed by this worker a moment ago) counts as load.
    plan = plan_moves([slot("t-1")], pool, reserved={("r-standby", 3): 1, ("r-active", 2): 3})
    assert plan == (PlanEntry("t-1", 2, "mine", 1),)


class FleetMessage:
    """A consumed record of the fleet topic, as confluent-kafka hands it over."""

    def __init__(self, value: bytes, topic: str) -> None:
        self._value, self._topic = value, topic

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes:
        return b"w2"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 3

    def topic(self) -> str:
        return self._topic


def test_the_heartbeat_thread_feeds_summaries_to_the_directory() -> None:
    topics = Topics(prefix="x.", agent_partitions=PARTITIONS)
    directory = FleetDirectory("me", PARTITIONS)
    letters: list[tuple[str, str]] = []
    tracker = LivenessTracker(
        KafkaConfig("127.0.0.1:9"),
        topics,
        directory=directory,
        on_dead_letter=lambda topic, why: letters.append((topic, why)),
    )
    producer = MemoryProducer()
    batch = [
        FleetMessage(summary("w2", (1,), fa(A1)).encode(), topics.fleet),
        FleetMessage(b'{"schema_version": 1}', topics.fleet),
    ]
    tracker._handle(batch, 5.0, producer)  # type: ignore[arg-type]
    assert [c.agent_id for c in directory.candidates(5.1, owned=(0,))] == [A1]
    assert tracker.snapshot() == {}  # a summary is not a heartbeat
    assert letters == [(topics.fleet, "invalid")]
    assert [r.topic for r in producer.sent] == [topics.dead_letter]


def test_encode_summary_is_the_records_encoding_and_keeps_the_best_targets() -> None:
    local = [
        Candidate("a", 1, Pool.ACTIVE, 4, 4),  # full
        Candidate("b", 1, Pool.ACTIVE, 4, 1),
        Candidate("c", 1, Pool.STANDBY, 2, 1),  # standby: first
        Candidate("d", 1, Pool.ACTIVE, 4, 0),
    ]
    reserved = {("d", 1): 3}  # d is nearly full once its reservations count
    for limit in (10, 2):
        assert encode_summary("me", {1, 0}, local, reserved, 5.0, limit) == (
            summarize("me", {1, 0}, local, reserved, 5.0, limit).encode()
        )
    assert [(c.agent_id, c.in_flight) for c in best_targets(local, reserved, 2)] == [
        ("b", 1),
        ("c", 1),
    ]
    assert [c.agent_id for c in best_targets(local, reserved, 3)] == ["b", "c", "d"]


candidate = st.builds(
    Candidate,
    st.text(min_size=1, max_size=6),
    st.integers(0, 2**63 - 1),
    st.sampled_from(Pool),
    st.integers(0, 8),
    st.integers(0, 10),
)


@settings(derandomize=True, deadline=None, max_examples=200)
@given(
    local=st.lists(candidate, max_size=12),
    reserved_counts=st.lists(st.integers(0, 4), max_size=12),
    owned=st.sets(st.integers(0, 63), max_size=8),
    limit=st.integers(1, 15),
    at=st.floats(0, 2e9, allow_nan=False),
    monitor_id=st.text(min_size=1, max_size=8),
)
def test_the_hand_written_summary_encoder_matches_the_generic_one(
    local: list[Candidate],
    reserved_counts: list[int],
    owned: set[int],
    limit: int,
    at: float,
    monitor_id: str,
) -> None:
    """The fast path is kept for speed only (bench/codec_cost.py): same bytes on any fleet."""
    reserved = {c.key: n for c, n in zip(local, reserved_counts, strict=False) if n}
    fast = encode_summary(monitor_id, owned, local, reserved, at, limit)
    assert fast == summarize(monitor_id, owned, local, reserved, at, limit).encode()
    assert FleetSummary.decode(fast).monitor_id == monitor_id
