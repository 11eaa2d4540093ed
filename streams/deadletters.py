"""Dead letters, and containment: no single record may stop the monitor.

The builder is shared with the SDK and lives next to the model it builds
(:mod:`agent_failover.models.deadletter`); :class:`DeadLetters` sends the monitor's, from every
part that reads input. A record is set aside with its reason when it cannot be used: it does not
decode or validate, or handling it raised (reason ``internal: <type>``, the stack only in the
log). Setting it aside never raises either: a copy the broker refuses or does not acknowledge is
logged and counted as lost, and the part goes on with the next record.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from agent_failover.config import Topics
from agent_failover.errors import CodecError, Refusal
from agent_failover.logs import rate_limited, similar
from agent_failover.models.deadletter import (
    DeadLetter,
    Source,
    cut_key,
    dead_letter,
    internal_reason,
)
from agent_failover.signing import Signer
from agent_failover.streams.channels import Message, Send
from agent_failover.streams.metrics import AGENT, DEAD_LETTER_TOPICS, MonitorMetrics, logical_topic

__all__ = ["AgentLetters", "DeadLetters", "cut_key", "dead_letter", "log_internal"]

#: One line per bad record would let whoever writes them fill the log: rate limited.
log = rate_limited(__name__)


class DeadLetters:
    """Writes a dead letter for a consumed record to ``topics.dead_letter`` and counts it in
    ``agent_failover_dead_letters_total`` (by the record's logical topic and ``refusal``); a
    copy that cannot be written counts in ``agent_failover_dead_letters_lost_total``."""

    def __init__(self, topics: Topics, send: Send, metrics: MonitorMetrics) -> None:
        self._topics = topics
        self._send = send
        self._metrics = metrics

    async def send(self, msg: Message, reason: str, refusal: Refusal = Refusal.INVALID) -> None:
        """Set ``msg`` aside with ``reason``: counted at once, then its copy written and
        acknowledged. Never raises (a copy that is not written is logged and counted lost)."""
        where = f"{msg.topic}[{msg.partition}]@{msg.offset}"
        topic = logical_topic(self._topics, msg.topic)
        self._metrics.dead_letter(topic, refusal.value)
        log.warning("dead letter %s: %s", where, reason, extra=similar(f"refused {topic}"))
        try:
            record = dead_letter(
                topic=msg.topic,
                partition=msg.partition,
                offset=msg.offset,
                key=msg.key,
                value=msg.value,
                reason=reason,
                at=time.time(),
                refusal=refusal,
            )
            key = cut_key(msg.key) or b""
            ack = await self._send(self._topics.dead_letter, key, record.encode(), 0)
            await ack
        except Exception as exc:  # the record is skipped all the same: nothing may stop here
            self._metrics.dead_letter_lost(topic)
            log.error(
                "dead letter of %s not written (%s: %s); the record is skipped",
                where,
                type(exc).__name__,
                exc,
                extra=similar(f"lost {topic}"),
            )

    async def contain(self, msg: Message, handle: Callable[[], Awaitable[None]]) -> bool:
        """Run ``handle()`` for ``msg``; True if it returned. An exception it raises is the
        record's: logged with its stack (rate limited), the record dead-lettered with reason
        ``internal: <type>``, and False returned so the caller goes on with the next record.
        Cancellation is not caught."""
        try:
            await handle()
            return True
        except Exception as exc:
            log_internal(msg.topic, f"{msg.topic}[{msg.partition}]@{msg.offset}", exc)
            await self.send(msg, internal_reason(exc), Refusal.INTERNAL)
            return False


def log_internal(topic: str, where: str, exc: Exception) -> None:
    """Log that handling the record at ``where`` (of ``topic``) raised ``exc``, with its stack;
    rate limited per topic and exception type."""
    log.error(
        "handling %s raised %s; setting it aside",
        where,
        type(exc).__name__,
        exc_info=exc,
        extra=similar(f"internal {topic} {type(exc).__name__}"),
    )


class AgentLetters:
    """Counts the dead letters agents write (``source: agent``) in
    ``agent_failover_dead_letters_total{source="agent"}``.

    Agents have no metrics endpoint of their own; the monitor reads the dead-letter topic for
    them. The topic has one partition, so one worker of the group reads it and each letter is
    counted once in the fleet (a few again after that worker dies: reading resumes from the last
    committed offset). Letters the monitor wrote are skipped (it counted them when it wrote
    them), and so is anything not signed by the fleet or not a dead letter: a dead letter is
    never written about a dead letter.
    """

    def __init__(self, topics: Topics, metrics: MonitorMetrics, signer: Signer) -> None:
        self._topics = topics
        self._metrics = metrics
        self._signer = signer

    def on_message(self, msg: Message) -> None:
        """Count one record of the dead-letter topic if an agent wrote it. Never raises."""
        try:
            letter = self._signer.open(DeadLetter, msg)
            if letter.source is not Source.AGENT:
                return
            topic = logical_topic(self._topics, letter.topic)
            if not letter.topic.startswith(self._topics.prefix) or topic not in DEAD_LETTER_TOPICS:
                log.warning(
                    "agent dead letter about topic %r not counted: not one agents read",
                    letter.topic[:200],
                    extra=similar("agent letter topic"),
                )
                return
            refusal = letter.refusal or Refusal.INVALID
            self._metrics.dead_letter(topic, refusal.value, AGENT)
        except CodecError as exc:
            log.warning(
                "%s[%d]@%d not counted: %s",
                msg.topic,
                msg.partition,
                msg.offset,
                exc,
                extra=similar("agent letter unreadable"),
            )
        except Exception as exc:
            log_internal(msg.topic, f"{msg.topic}[{msg.partition}]@{msg.offset}", exc)
