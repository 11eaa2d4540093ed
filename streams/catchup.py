"""How far the heartbeat reader is behind its partitions, in records and in seconds.

After each poll the heartbeat thread (:mod:`streams.liveness`) reports every assigned partition's
position (the next offset it will read) and high watermark as the last fetch response gave it
(never ListOffsets: the development broker answers that short, docs/tansu.md quirk a). From them:

- A partition is *caught up* once its position reached a high watermark fetched since it was
  assigned: every heartbeat the broker held then has been read, so from then on a live agent is
  heard within its interval. Detection counts a partition as taken over only from then.
- Its lag in seconds is how long ago the thread last held everything the broker had: reaching a
  high watermark first seen at ``t`` means everything appended before ``t`` was read (give or
  take a fetch round trip); a partition at its high watermark is 0 s behind. A thread that keeps
  up with a busy partition passes each high watermark it saw within a poll or two, so this stays
  near the poll interval; a thread falling behind sees it grow with the backlog.

Written by the heartbeat thread only; read from the event loop through dict copies (atomic
under the GIL).
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Collection

#: High watermarks remembered per partition while behind (about 10 polls a second). When full,
#: newer ones are not recorded: the lag then reads high, never low.
MAX_MARKS = 1000


@dataclasses.dataclass(frozen=True, slots=True)
class PartitionLag:
    """One heartbeat partition's lag (``None``: not known yet since it was assigned)."""

    records: int | None  # high watermark - position
    seconds: float | None  # since the thread last held everything the broker had


class CatchUp:
    """Per assigned partition: the high watermarks seen and not yet reached, when the thread was
    last caught up, and the records still to read."""

    def __init__(self, max_marks: int = MAX_MARKS) -> None:
        self._max_marks = max_marks
        self._marks: dict[int, collections.deque[tuple[int, float]]] = {}
        self._caught_up_at: dict[int, float] = {}
        self._records: dict[int, int] = {}

    def assign(self, partitions: Collection[int]) -> None:
        """Track exactly ``partitions``; one newly assigned starts unknown (not caught up)."""
        wanted = set(partitions)
        for p in [p for p in self._marks if p not in wanted]:
            del self._marks[p]
            self._caught_up_at.pop(p, None)
            self._records.pop(p, None)
        for p in wanted - self._marks.keys():
            self._marks[p] = collections.deque()

    def observe(self, partition: int, position: int | None, high: int | None, now: float) -> None:
        """The thread's ``position`` in ``partition`` and the fetched ``high`` watermark at
        ``now`` (``None``: unknown). Until a position is known the cached high watermark may be
        left from an earlier assignment, so nothing is concluded before."""
        marks = self._marks.get(partition)
        if marks is None or position is None or high is None:
            return
        self._records[partition] = max(0, high - position)
        if position >= high:
            marks.clear()
            self._caught_up_at[partition] = now
            return
        if (not marks or high > marks[-1][0]) and len(marks) < self._max_marks:
            marks.append((high, now))
        reached: float | None = None
        while marks and marks[0][0] <= position:
            reached = marks.popleft()[1]
        if reached is not None:
            self._caught_up_at[partition] = reached

    @property
    def caught_up(self) -> frozenset[int]:
        """The assigned partitions read to a high watermark at least once since assigned."""
        return frozenset(self._caught_up_at.copy())

    def behind(self, now: float) -> float:
        """Seconds the most lagging caught-up partition is behind at ``now`` (0 with none)."""
        return max((now - t for t in self._caught_up_at.copy().values()), default=0.0)

    def lag(self, now: float) -> dict[int, PartitionLag]:
        """Every assigned partition's lag at ``now``."""
        caught, records = self._caught_up_at.copy(), self._records.copy()
        return {
            p: PartitionLag(records.get(p), now - caught[p] if p in caught else None)
            for p in sorted(self._marks.copy())
        }
