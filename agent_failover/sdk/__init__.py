"""The agent SDK: embed an :class:`Agent` or :class:`AsyncAgent` to take tasks and checkpoint.

The public surface is ``__all__`` (pinned by ``tests/unit/test_exports.py``); test doubles for
handler tests live in :mod:`agent_failover.sdk.testing`.
"""

from agent_failover.errors import TaskReleased
from agent_failover.sdk.agent import Agent, Handler
from agent_failover.sdk.aio import AsyncAgent, AsyncHandler
from agent_failover.sdk.context import TaskContext, current_task
from agent_failover.sdk.outcomes import Submission
from agent_failover.sdk.submit import TaskSubmitter

__all__ = [
    "Agent",
    "AsyncAgent",
    "AsyncHandler",
    "Handler",
    "Submission",
    "TaskContext",
    "TaskReleased",
    "TaskSubmitter",
    "current_task",
]
