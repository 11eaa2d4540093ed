"""confluent-kafka clients kept in memory, for the unit tests of the threads that read records:
the monitor's heartbeat thread and an agent's listener. Messages are confluent-kafka's own
(``confluent_kafka.Message`` builds one from its fields)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, Message

from agent_failover.signing import Signer


@dataclasses.dataclass(frozen=True)
class Produced:
    """One record given to :meth:`MemoryProducer.produce`."""

    topic: str
    value: bytes | None
    key: bytes | None
    headers: Any


#: What a producer does with a record: None takes it; an exception is raised by ``produce()``
#: (refused at once, like a full queue); a :class:`KafkaError` is reported in its delivery report
#: (refused by the broker).
Verdict = Callable[[Produced], BaseException | KafkaError | None]


class MemoryProducer:
    """A producer that keeps what it is given (``sent``: records the broker took) and serves
    delivery reports on ``poll()``; ``verdict`` decides each record's fate (default: taken)."""

    def __init__(self, verdict: Verdict = lambda _record: None) -> None:
        self.sent: list[Produced] = []
        self.refused: list[Produced] = []
        self._verdict = verdict
        self._reports: list[tuple[Callable[..., None], KafkaError | None, Message]] = []

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: Any = None,
        on_delivery: Callable[..., None] | None = None,
        **_: Any,
    ) -> None:
        record = Produced(topic, value, key, headers)
        verdict = self._verdict(record)
        if isinstance(verdict, BaseException):
            self.refused.append(record)
            raise verdict
        (self.refused if verdict is not None else self.sent).append(record)
        if on_delivery is not None:
            msg = Message(topic=topic, partition=0, offset=len(self.sent), key=key, value=value)
            self._reports.append((on_delivery, verdict, msg))

    def poll(self, timeout: float = 0) -> int:
        reports, self._reports = self._reports, []
        for callback, error, msg in reports:
            callback(error, msg)
        return len(reports)

    def flush(self, timeout: float = 0) -> int:
        self.poll()
        return 0

    def to(self, topic: str) -> list[Produced]:
        """The records the broker took for ``topic``."""
        return [r for r in self.sent if r.topic == topic]


def consumed(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    signer: Signer | None = None,
) -> Message:
    """A record as a consumer hands it over, signed by ``signer`` (default: unsigned)."""
    headers = signer.headers(topic, key, value) if signer is not None else None
    return Message(
        topic=topic,
        partition=partition,
        offset=offset,
        key=key,
        value=value,
        headers=headers,  # type: ignore[arg-type]
    )


class MemoryConsumer:
    """A consumer whose ``consume()`` hands over the batches it was given, one per call, then
    nothing; ``on_empty`` is called when it has nothing left (a test stops the loop there)."""

    def __init__(self, batches: Sequence[Sequence[Message]], on_empty: Callable[[], None]) -> None:
        self._batches = [list(b) for b in batches]
        self._on_empty = on_empty

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        if not self._batches:
            self._on_empty()
            return []
        return self._batches.pop(0)
