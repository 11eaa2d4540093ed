"""Who detection must ask about at the next tick: the agents whose verdict may have changed.

Asking :func:`streams.detection.dead_epochs` about every owned agent twenty times a second was
most of a worker's CPU at 10k agents (docs/architecture.md, "Monitor hot path"). An agent's
verdict changes only when its record is written or its epoch changes (*changed*), when its
heartbeats stop (*silent*: the liveness map's prefix older than the timeout), when a deadline no
heartbeat marks passes (the first heartbeat of a new epoch, a timeout counted from a takeover or
a stall: a timer), or while a dead epoch found is not yet fenced (*watched*). Silent agents with
nothing left to decide (fenced or stopped) are *quiet* and skipped until they change.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Iterable


@dataclasses.dataclass(frozen=True, slots=True)
class Suspects:
    """The agents to ask about at one tick, in agent id order, and which of them changed."""

    order: tuple[str, ...]
    changed: frozenset[str]


class SuspectScheduler:
    """The changed, watched and quiet sets and the deadline heap of one worker's detection."""

    def __init__(self) -> None:
        self._changed: set[str] = set()  # record written or epoch changed since the last tick
        self._watched: set[str] = set()  # dead epochs found, not yet fenced and applied
        self._quiet: set[str] = set()  # silent, but fenced or stopped: nothing to decide
        self._timers: list[tuple[float, str]] = []  # (deadline, agent): unheard newest epochs
        self._due: dict[str, float] = {}  # agent -> its newest timer (no duplicates in the heap)

    def touch(self, agent_ids: Iterable[str]) -> None:
        """Ask about these agents at the next tick as changed: their record was written, their
        epoch changed, or an aborted tick did not reach them."""
        self._changed.update(agent_ids)

    def take(self, now: float, silent: Iterable[str]) -> Suspects:
        """The agents to ask about at the tick of ``now``: the changed and watched ones, the
        ``silent`` ones not quiet, and those whose timer is due; the changed set starts empty."""
        changed, self._changed = self._changed, set()
        self._quiet -= changed
        suspects = changed | self._watched
        quiet = self._quiet
        suspects.update(a for a in silent if a not in quiet)
        timers = self._timers
        while timers and timers[0][0] <= now:
            at, agent_id = heapq.heappop(timers)
            if self._due.get(agent_id) == at:
                del self._due[agent_id]
            suspects.add(agent_id)
        return Suspects(tuple(sorted(suspects)), frozenset(changed))

    def watch(self, agent_id: str) -> None:
        """Dead epochs were found: ask again every tick until none is left."""
        self._watched.add(agent_id)

    def unwatch(self, agent_id: str) -> None:
        """No dead epoch is left to fence."""
        self._watched.discard(agent_id)

    def quiet(self, agent_id: str) -> None:
        """Silent, but nothing can be decided (stopped or fenced): skip it until it changes."""
        self._quiet.add(agent_id)

    def wake_at(self, agent_id: str, at: float) -> None:
        """Ask again once ``at`` has passed: a deadline the silent scan does not find (no
        heartbeat yet from the newest epoch, or silence counted from a takeover or a stall)."""
        if self._due.get(agent_id) != at:
            self._due[agent_id] = at
            heapq.heappush(self._timers, (at, agent_id))

    def forget(self, agent_id: str) -> None:
        """Stop watching ``agent_id`` (no longer owned, or unknown to the table and liveness)."""
        self._watched.discard(agent_id)
        self._quiet.discard(agent_id)

    def reset(self, everyone: Iterable[str]) -> None:
        """Start over: ask about ``everyone`` at the next tick (after indexing the owned records
        again), with nothing watched, quiet or timed."""
        self._changed = set(everyone)
        self._watched.clear()
        self._quiet.clear()
        self._timers, self._due = [], {}
