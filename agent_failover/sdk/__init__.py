"""The agent SDK: embed an :class:`Agent` or :class:`AsyncAgent` to take tasks and checkpoint.

The public surface is ``__all__`` (pinned by ``tests/unit/test_exports.py``); test doubles for
handler tests live in :mod:`agent_failover.sdk.testing`.

Inside, both fronts (:mod:`~agent_failover.sdk.agent`, :mod:`~agent_failover.sdk.aio`) drive one
:mod:`~agent_failover.sdk.core` per epoch, which wires parts of one concern each: what the epoch
holds (:mod:`~agent_failover.sdk.holdings`), its writes (:mod:`~agent_failover.sdk.writes`), the
lease and its renewal (:mod:`~agent_failover.sdk.lease`, :mod:`~agent_failover.sdk.renewal`),
the listener and starter (:mod:`~agent_failover.sdk.intake`), control records
(:mod:`~agent_failover.sdk.control`), starting and ending tasks
(:mod:`~agent_failover.sdk.tasks`, :mod:`~agent_failover.sdk.admission`) and handing them back
(:mod:`~agent_failover.sdk.handoff`). ``docs/architecture.md`` lists every module.
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
