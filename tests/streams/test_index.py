"""The record index: written with the table, rebuilt when the table changed behind its back."""

from __future__ import annotations

import dataclasses

from agent_failover.streams.index import RecordIndex
from agent_failover.streams.state import AgentRecord, SlotStatus
from tests.streams.factories import slot


def rec(agent: str, partition: int, *statuses: SlotStatus) -> AgentRecord:
    slots = {f"t-{i}": slot(f"t-{i}", status=s) for i, s in enumerate(statuses)}
    return AgentRecord(agent, partition, epoch=1, tasks=slots)


def test_a_rebuild_indexes_the_owned_partitions_only() -> None:
    table = {"a": rec("a", 0), "b": rec("b", 1), "c": rec("c", 2)}
    index = RecordIndex(table)
    assert index.stale(frozenset({0, 1}))
    assert set(index.rebuild(frozenset({0, 1}))) == {"a", "b"}
    assert not index.stale(frozenset({0, 1}))
    assert index.stale(frozenset({0}))  # other partitions: rebuild
    assert index.get("c") is None and index.current("c") is table["c"]


def test_a_store_writes_the_table_and_the_index_and_is_reported_once() -> None:
    table: dict[str, AgentRecord] = {}
    index = RecordIndex(table)
    index.rebuild(frozenset({0}))
    a = rec("a", 0)
    index.store("a", a)
    assert table == {"a": a} and index.get("a") is a and index.records == {"a": a}
    assert not index.stale(frozenset({0}))  # our own write: the index is still true
    assert index.drain_written() == {"a"}
    assert index.drain_written() == set()


def test_the_table_changed_behind_its_back_or_a_recovery_means_rebuild() -> None:
    table = {"a": rec("a", 0)}
    index = RecordIndex(table)
    index.rebuild(frozenset({0}))
    table["b"] = rec("b", 0)  # as changelog recovery would
    assert index.stale(frozenset({0}))
    index.rebuild(frozenset({0}))
    table["a"] = dataclasses.replace(table["a"], stopped=(1,))  # same size: not noticed...
    assert not index.stale(frozenset({0}))
    index.invalidate()  # ...so recovery invalidates it
    assert index.stale(frozenset({0}))
    index.rebuild(frozenset({0}))
    assert index.get("a") == table["a"]


def test_agents_with_queued_tasks_are_known_without_a_scan() -> None:
    table = {
        "b": rec("b", 0, SlotStatus.QUEUED, SlotStatus.OWNED),
        "a": rec("a", 0, SlotStatus.QUEUED),
        "d": rec("d", 0, SlotStatus.OWNED),
    }
    index = RecordIndex(table)
    index.rebuild(frozenset({0}))
    assert [r.agent_id for r in index.with_queued()] == ["a", "b"]
    index.store("a", rec("a", 0, SlotStatus.OWNED))  # dispatched
    index.store("d", rec("d", 0, SlotStatus.OWNED, SlotStatus.QUEUED))
    assert [r.agent_id for r in index.with_queued()] == ["b", "d"]


def test_agents_written_since_a_version_newest_first_until_too_long_ago() -> None:
    table: dict[str, AgentRecord] = {}
    index = RecordIndex(table)
    index.rebuild(frozenset({0}))
    v0 = index.version
    assert index.written_since(v0) == []
    index.store("a", rec("a", 0))
    v1 = index.version
    index.store("b", rec("b", 0))
    index.store("a", rec("a", 0, SlotStatus.OWNED))
    assert index.written_since(v0) == ["a", "b"]
    assert index.written_since(v1) == ["a", "b"]  # a again after v1
    assert index.written_since(index.version) == []
    index.rebuild(frozenset({0}))
    assert index.written_since(v1) is None  # built before the rebuild: build again


def test_more_writes_than_remembered_mean_build_again() -> None:
    index = RecordIndex({})
    index.rebuild(frozenset({0}))
    v0 = index.version
    for n in range(5000):
        index.store(f"a{n}", rec(f"a{n}", 0))
    assert index.written_since(v0) is None
    assert index.written_since(index.version - 2) == ["a4999", "a4998"]
