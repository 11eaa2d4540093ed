"""How far the monitor's faust agent is behind on the partitions it was assigned.

Per partition: the high watermark of the last fetch response (faust's ``consumer.highwater``,
right even on the development broker, whose ListOffsets(LATEST) answer is short:
``docs/tansu.md``, quirk a) minus the offset after the last record the agent handled. Before
the agent handled any record of a partition since it was assigned, faust's fetch position
stands in.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Protocol


class TopicPartition(Protocol):
    """faust's ``TP``."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...


class Consumer(Protocol):
    """The part of faust's consumer read here."""

    def highwater(self, tp: Any) -> int | None: ...
    async def position(self, tp: Any) -> int | None: ...


class ConsumerLag:
    """Offsets the agent handled, and the lag they leave, per topic, over the assignment."""

    def __init__(self, names: Mapping[str, str]) -> None:
        self._names = dict(names)  # topic -> the name the lag is reported under
        self._handled: dict[tuple[str, int], int] = {}  # next offset to handle
        self._assigned: frozenset[tuple[str, int]] = frozenset()

    def handled(self, topic: str, partition: int, offset: int) -> None:
        """The agent is done with the record at ``offset``."""
        self._handled[(topic, partition)] = offset + 1

    async def measure(
        self, consumer: Consumer, assigned: Collection[TopicPartition]
    ) -> dict[str, int]:
        """Records not handled yet per reported topic name, over ``assigned`` (every name of
        ``names`` is in the result, 0 when none of its partitions is assigned)."""
        ours = [tp for tp in assigned if tp.topic in self._names]
        now = frozenset((tp.topic, tp.partition) for tp in ours)
        if now != self._assigned:
            # Offsets of partitions held before a rebalance say nothing about the new holding.
            self._handled = {k: v for k, v in self._handled.items() if k in self._assigned & now}
            self._assigned = now
        lag = dict.fromkeys(self._names.values(), 0)
        for tp in ours:
            high = consumer.highwater(tp)
            if high is None or high < 0:
                continue  # nothing fetched yet
            position = self._handled.get((tp.topic, tp.partition))
            if position is None:
                position = await consumer.position(tp)
            if position is not None and position >= 0:
                lag[self._names[tp.topic]] += max(0, high - position)
        return lag
