"""The record index: written with the table, rebuilt when the table changed behind its back."""

from __future__ import annotations

import dataclasses

from streams.index import RecordIndex
from streams.state import AgentRecord, SlotStatus
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


def test_agents_with_queued_tasks_or_unconfirmed_claims_are_known_without_a_scan() -> None:
    table = {
        "b": rec("b", 0, SlotStatus.QUEUED, SlotStatus.OWNED),
        "a": rec("a", 0, SlotStatus.QUEUED),
        "c": rec("c", 0, SlotStatus.UNCONFIRMED),
        "d": rec("d", 0, SlotStatus.OWNED),
    }
    index = RecordIndex(table)
    index.rebuild(frozenset({0}))
    assert [r.agent_id for r in index.with_queued()] == ["a", "b"]
    assert [r.agent_id for r in index.with_unconfirmed()] == ["c"]
    index.store("a", rec("a", 0, SlotStatus.OWNED))  # dispatched
    index.store("d", rec("d", 0, SlotStatus.UNCONFIRMED, SlotStatus.QUEUED))
    assert [r.agent_id for r in index.with_queued()] == ["b", "d"]
    assert [r.agent_id for r in index.with_unconfirmed()] == ["c", "d"]
