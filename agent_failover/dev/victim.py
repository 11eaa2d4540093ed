"""Choosing the agent to kill: the one holding the most work that is ready to be interrupted.

Killing the busiest agent makes a failover move as many tasks as possible; "ready" (a task has
checkpointed far enough, the monitor already watches the agent, ...) is the caller's rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

#: Per agent, the tasks it holds and the newest step each has checkpointed (-1: none yet).
Holdings = Mapping[str, Mapping[str, int]]


def busiest_agent(
    holdings: Holdings, ready: Callable[[str, Mapping[str, int]], bool]
) -> str | None:
    """The agent holding the most tasks among those holding some for which ``ready`` is true.

    ``ready(agent, tasks)`` gets the agent's tasks with their checkpointed steps. Ties go to the
    agent listed first. None when no agent qualifies.
    """
    candidates = [a for a, tasks in holdings.items() if tasks and ready(a, tasks)]
    return max(candidates, key=lambda a: len(holdings[a]), default=None)


def reached_step(step: int) -> Callable[[str, Mapping[str, int]], bool]:
    """A ``ready`` rule: one of the agent's tasks has checkpointed ``step`` or a later one."""

    def ready(agent: str, tasks: Mapping[str, int]) -> bool:
        return max(tasks.values()) >= step

    return ready
