"""An agent's dead letters: records addressed to it that it could not use, set aside.

The listener and the checkpoint reader hand every record they read to :meth:`AgentDeadLetters.
contain`: an exception while handling one is that record's, never the thread's. The record is
written to the dead-letter topic (``source: agent``, the agent's id, the reason; the monitor
counts these, docs/metrics.md) and the thread goes on with the next record. Writing one never
raises and never waits: a copy the producer or the broker refuses is only logged (rate limited:
whoever writes bad records chooses how many).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import Message

from agent_failover.errors import Refusal
from agent_failover.logs import rate_limited, similar
from agent_failover.models import DeadLetter, Source, cut_key, dead_letter, internal_reason
from agent_failover.sdk.kafka import DeliveryFuture

log = rate_limited(__name__)

#: ``send(topic, key, value)``: queue a record, its future resolved by the broker's answer
#: (:meth:`~agent_failover.sdk.kafka.ConfirmingProducer.send`).
Send = Callable[[str, bytes, bytes], DeliveryFuture]


def where(msg: Message) -> str:
    """``topic[partition]@offset`` of a consumed record, for log lines."""
    return f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"


def letter_of(
    msg: Message,
    reason: str,
    refusal: Refusal,
    *,
    source: Source = Source.MONITOR,
    agent_id: str | None = None,
) -> DeadLetter:
    """The dead letter of a record confluent-kafka consumed (the monitor's heartbeat thread uses
    it too)."""
    return dead_letter(
        topic=msg.topic() or "",
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        key=msg.key(),
        value=msg.value(),
        reason=reason,
        at=time.time(),
        refusal=refusal,
        source=source,
        agent_id=agent_id,
    )


class AgentDeadLetters:
    """Writes this agent's dead letters to ``topic`` with ``send`` (signed, like every record
    the agent writes). Thread-safe: ``send`` is."""

    def __init__(self, send: Send, topic: str, agent_id: str) -> None:
        self._send = send
        self._topic = topic
        self._agent_id = agent_id

    def send(self, msg: Message, reason: str, refusal: Refusal) -> None:
        """Set ``msg`` aside with ``reason``; never raises, never waits for the broker."""
        log.warning(
            "setting %s aside: %s", where(msg), reason, extra=similar(f"refused {msg.topic()}")
        )
        try:
            record = letter_of(msg, reason, refusal, source=Source.AGENT, agent_id=self._agent_id)
            future = self._send(self._topic, cut_key(msg.key()) or b"", record.encode())
        except Exception as exc:  # a full queue, a stopped producer: the record is skipped anyway
            self._lost(msg, exc)
            return

        def report(f: DeliveryFuture) -> None:
            if (exc := f.exception()) is not None:
                self._lost(msg, exc)

        future.add_done_callback(report)

    def contain(self, msg: Message, handle: Callable[[], None]) -> bool:
        """Run ``handle()`` for ``msg``; True if it returned. An exception it raises is the
        record's: logged with its stack (rate limited), the record set aside with reason
        ``internal: <type>``, and False returned so the caller goes on with the next record."""
        try:
            handle()
            return True
        except Exception as exc:
            self.internal(msg, exc)
            return False

    def internal(self, msg: Message, exc: Exception) -> None:
        """Handling ``msg`` raised ``exc``: log its stack (rate limited), set the record aside
        with reason ``internal: <type>``."""
        log.error(
            "handling %s raised %s; setting it aside",
            where(msg),
            type(exc).__name__,
            exc_info=exc,
            extra=similar(f"internal {msg.topic()} {type(exc).__name__}"),
        )
        self.send(msg, internal_reason(exc), Refusal.INTERNAL)

    def _lost(self, msg: Message, exc: BaseException) -> None:
        # An agent has no metrics endpoint: the log line is the count.
        log.error(
            "dead letter of %s not written (%s: %s); the record is skipped",
            where(msg),
            type(exc).__name__,
            exc,
            extra=similar(f"lost {msg.topic()}"),
        )
