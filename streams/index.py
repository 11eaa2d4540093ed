"""The owned agent records, indexed where the monitor writes the table.

The detection tick must not walk the faust table (docs/architecture.md, "Monitor hot path"), so
:class:`RecordIndex` keeps the records of the owned partitions in a plain dict, updated by every
write that goes through it, and rebuilt from the table when the owned partitions change, after a
rebalance or recovery (faust writes the table itself then), or when the table's size changed
behind its back. It also knows which agents hold queued tasks, so the tick visits only those for
dispatch, and which agents were written after a given :attr:`RecordIndex.version`, so that a
cached view of the fleet's load can be brought up to date agent by agent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from agent_failover.streams.state import AgentRecord, SlotStatus

#: How many recent writes :meth:`RecordIndex.written_since` can list; beyond, it lists None.
_RECENT_LIMIT = 4096


class Table(Protocol):
    """The part of the faust table the monitor uses."""

    def get(self, key: str) -> AgentRecord | None: ...
    def __setitem__(self, key: str, value: AgentRecord) -> None: ...
    def __len__(self) -> int: ...
    def items(self) -> Iterable[tuple[str, AgentRecord]]: ...


class RecordIndex:
    """The table's records of the owned partitions, and the agents written since last asked."""

    def __init__(self, table: Table) -> None:
        self._table = table
        self._records: dict[str, AgentRecord] = {}
        self._partitions: frozenset[int] | None = None  # of the index; None: rebuild
        self._table_len = 0  # len(table) after our last write: another change means rebuild
        self._queued: set[str] = set()  # agents whose record holds queued tasks
        self._written: set[str] = set()  # stored since the last drain_written()
        self._version = 0  # counts stores and rebuilds
        self._recent: dict[str, int] = {}  # agent -> version of its last store, oldest first
        self._floor = 0  # written_since() knows nothing before this version

    # -- the table ------------------------------------------------------------------------------

    def current(self, agent_id: str) -> AgentRecord | None:
        """The table's record of ``agent_id`` (the truth; the index may be behind a recovery)."""
        return self._table.get(agent_id)

    def store(self, agent_id: str, record: AgentRecord) -> None:
        """Write ``record`` to the table, and to the index the tick reads."""
        self._table[agent_id] = record
        self._table_len = len(self._table)
        self._records[agent_id] = record
        self._classify(record)
        self._written.add(agent_id)
        self._version += 1
        self._recent.pop(agent_id, None)
        self._recent[agent_id] = self._version
        if len(self._recent) > _RECENT_LIMIT:
            del self._recent[next(iter(self._recent))]

    # -- keeping the index true -----------------------------------------------------------------

    def stale(self, partitions: frozenset[int]) -> bool:
        """Whether the index must be rebuilt to serve ``partitions``."""
        return self._partitions != partitions or len(self._table) != self._table_len

    def invalidate(self) -> None:
        """Rebuild at the next :meth:`stale` check (recovery writes the table without us)."""
        self._partitions = None

    def rebuild(self, partitions: frozenset[int]) -> Mapping[str, AgentRecord]:
        """Index the table's records of ``partitions`` again; returns them (read only)."""
        records = {
            a: r for a, r in self._table.items() if r is not None and r.partition in partitions
        }
        self._records = records
        self._queued = set()
        for record in records.values():
            self._classify(record)
        self._partitions, self._table_len = partitions, len(self._table)
        self._written.clear()  # the caller asks about every indexed agent anyway
        self._version += 1
        self._recent.clear()  # nothing built before this version is of use any more
        self._floor = self._version
        return records

    def drain_written(self) -> set[str]:
        """Agents stored since the last call: their verdict may have changed."""
        written, self._written = self._written, set()
        return written

    @property
    def version(self) -> int:
        """Grows with every store and rebuild: the state a view built now reflects."""
        return self._version

    def written_since(self, version: int) -> list[str] | None:
        """Agents stored after ``version``, newest first; None if that is too long ago to tell
        (a rebuild since, or more writes than are remembered): rebuild the view instead."""
        if version < self._floor:
            return None
        out: list[str] = []
        for agent_id in reversed(self._recent):
            if self._recent[agent_id] <= version:
                return out
            out.append(agent_id)
        # Every remembered write is newer: older ones may have been forgotten.
        return out if len(self._recent) < _RECENT_LIMIT else None

    # -- reading --------------------------------------------------------------------------------

    def get(self, agent_id: str) -> AgentRecord | None:
        """The indexed record of ``agent_id``, if any."""
        return self._records.get(agent_id)

    @property
    def records(self) -> Mapping[str, AgentRecord]:
        """Every indexed record (read only). Safe for single lookups from a worker thread:
        records are immutable and a dict lookup is atomic under the GIL."""
        return self._records

    def with_queued(self) -> list[AgentRecord]:
        """Records holding queued tasks, in agent id order."""
        found = ((a, self._records.get(a)) for a in sorted(self._queued))
        return [r for _, r in found if r is not None]

    def _classify(self, record: AgentRecord) -> None:
        if any(s.status is SlotStatus.QUEUED for s in record.tasks.values()):
            self._queued.add(record.agent_id)
        else:
            self._queued.discard(record.agent_id)
