"""Outcomes: one record per task saying how it ended, for submitters and ledgers.

An agent's ``completed`` or ``failed`` event says how *its* attempt ended; only the monitor knows
whether that attempt still counts. A zombie's late ``completed``, one of an attempt a decision
has superseded, or a copy of one already applied is rejected by
:func:`~streams.events.apply_event`; for every one it accepts, the router has this part publish a
``task_outcome`` to ``outcomes`` (key: task id; partition: the task's, Java partitioner over the
task partitions, as for its record in ``tasks``).

Exactly one outcome counts per task (docs/architecture.md, "Outcomes"):

- the outcome is acknowledged *before* the event's change to the agent's record is stored, so a
  record that shows the task finished implies a published outcome; a crash in between applies
  the event again, and publishes the same bytes again (:meth:`TaskOutcome.of_event`: the
  outcome is a function of the event);
- two workers applying one event (a rebalance) publish identical bytes too;
- readers take the first outcome per task id in its partition and ignore the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent_failover.config import Topics
from agent_failover.models import EventKind, TaskEvent, TaskOutcome
from agent_failover.partitioner import partition_for
from agent_failover.streams.channels import Send, until_done

log = logging.getLogger(__name__)

#: The event kinds that end a task.
FINAL = frozenset({EventKind.COMPLETED, EventKind.FAILED})


class OutcomePublisher:
    """Writes the outcome of each task whose final event the router accepted."""

    def __init__(self, topics: Topics, send: Send) -> None:
        self._topic = topics.outcomes
        self._partitions = topics.task_partitions
        self._send = send

    async def publish(self, ev: TaskEvent, keep_going: Callable[[], bool] = lambda: True) -> bool:
        """Write the outcome of ``ev`` and wait for the acknowledgement, trying again after a
        failure while ``keep_going()``; returns whether it was written."""
        outcome = TaskOutcome.of_event(ev)
        key = outcome.task_id.encode()
        value = outcome.encode()
        partition = partition_for(outcome.task_id, self._partitions)

        async def write() -> None:
            ack = await self._send(self._topic, key, value, partition)
            await ack

        done = await until_done(write, f"the outcome of task {outcome.task_id}", keep_going)
        if done:
            log.debug(
                "task %s %s (attempt %d)", outcome.task_id, outcome.kind.value, outcome.attempt
            )
        return done
