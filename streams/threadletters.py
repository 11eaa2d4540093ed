"""Dead letters from the heartbeat thread: records it cannot use, set aside without waiting.

The thread reads with a plain confluent-kafka consumer and writes with a plain producer
(:mod:`streams.liveness`), outside the event loop, so it cannot use the loop's
:class:`~streams.deadletters.DeadLetters`. Setting a record aside never raises and never waits:
the copy is queued, and one the local queue or the broker does not take is logged and counted
lost from its delivery report, so the thread keeps polling whatever it reads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import KafkaError, Message, Producer

from agent_failover.errors import Refusal
from agent_failover.logs import similar
from agent_failover.models import cut_key, internal_reason
from agent_failover.sdk.deadletters import letter_of
from agent_failover.signing import Signer
from agent_failover.streams.deadletters import log_internal


class ThreadLetters:
    """Sets records aside to ``topic`` from a thread's own producer.

    ``on_dead_letter(source, refusal)`` counts each record set aside, ``on_lost(source)`` each
    copy not written; ``log`` (rate limited) says which and why; ``fallback`` names the source of
    a record without a topic.
    """

    def __init__(
        self,
        topic: str,
        signer: Signer,
        log: logging.Logger | logging.LoggerAdapter[logging.Logger],
        *,
        fallback: str,
        on_dead_letter: Callable[[str, str], None] | None = None,
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        self._topic = topic
        self._signer = signer
        self._log = log
        self._fallback = fallback
        self._on_dead_letter = on_dead_letter
        self._on_lost = on_lost

    def internal(self, producer: Producer, msg: Message, exc: Exception) -> None:
        """Handling ``msg`` raised: log the stack (rate limited) and set the record aside."""
        topic = msg.topic() or self._fallback
        log_internal(topic, f"{topic}[{msg.partition()}]@{msg.offset()}", exc)
        self.send(producer, msg, internal_reason(exc), Refusal.INTERNAL)

    def send(self, producer: Producer, msg: Message, reason: str, refusal: Refusal) -> None:
        """Count ``msg`` as set aside and queue its copy. Never raises, never waits."""
        source = msg.topic() or self._fallback
        where = f"{source}[{msg.partition()}]@{msg.offset()}"
        self._log.warning("dead letter %s: %s", where, reason, extra=similar(f"refused {source}"))
        try:
            if self._on_dead_letter is not None:
                self._on_dead_letter(source, refusal.value)
            record = letter_of(msg, reason, refusal)
            value, key = record.encode(), cut_key(msg.key())
            headers = self._signer.headers(self._topic, key, value)

            def delivered(err: KafkaError | None, _msg: Message) -> None:
                if err is not None:
                    self._lost(source, where, err.str())

            producer.produce(self._topic, value, key, headers=headers, on_delivery=delivered)
        except Exception as exc:  # BufferError (queue full), KafkaException (refused at once)
            self._lost(source, where, f"{type(exc).__name__}: {exc}")

    def _lost(self, source: str, where: str, why: str) -> None:
        self._log.error(
            "dead letter of %s not written (%s); the record is skipped",
            where,
            why,
            extra=similar(f"lost {source}"),
        )
        if self._on_lost is not None:
            self._on_lost(source)
