"""Dead letters for input that failed decoding or validation.

The builder is shared with the SDK and lives next to the model it builds
(:mod:`agent_failover.models.deadletter`); :class:`DeadLetters` sends the monitor's, from every
part that reads input: a bad record is set aside with its reason, never applied, and never stops
the worker.
"""

from __future__ import annotations

import logging
import time

from agent_failover.config import Topics
from agent_failover.errors import Refusal
from agent_failover.models.deadletter import cut_key, dead_letter
from streams.channels import Message, Send
from streams.metrics import MonitorMetrics, logical_topic

__all__ = ["DeadLetters", "cut_key", "dead_letter"]

log = logging.getLogger(__name__)


class DeadLetters:
    """Writes a dead letter for a consumed record to ``topics.dead_letter`` and counts it in
    ``agent_failover_dead_letters_total`` (by the record's logical topic and ``refusal``)."""

    def __init__(self, topics: Topics, send: Send, metrics: MonitorMetrics) -> None:
        self._topics = topics
        self._send = send
        self._metrics = metrics

    async def send(self, msg: Message, reason: str, refusal: Refusal = Refusal.INVALID) -> None:
        """Set ``msg`` aside with ``reason`` (waits for the broker's acknowledgement)."""
        record = dead_letter(
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            key=msg.key,
            value=msg.value,
            reason=reason,
            at=time.time(),
        )
        log.warning("dead letter %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, reason)
        ack = await self._send(
            self._topics.dead_letter, cut_key(msg.key) or b"", record.encode(), 0
        )
        await ack
        self._metrics.dead_letter(logical_topic(self._topics, msg.topic), refusal.value)
