"""The Kafka I/O the monitor's parts are given: how they send, what a consumed record looks like,
and how the agents' committed offsets are read. faust and confluent-kafka provide them in
:mod:`streams.app`; the parts never import a Kafka client themselves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any, Protocol

from agent_failover.signing import Headers

#: send(topic, key, value, partition) -> awaitable acknowledgement (faust producer semantics). It
#: signs every record with the fleet's key (:mod:`agent_failover.signing`).
Send = Callable[[str, bytes, bytes, int], Awaitable[Awaitable[Any]]]
#: committed(partitions) -> the agents group's committed offset per (topic, partition); blocking,
#: run in an executor.
Committed = Callable[[Collection[tuple[str, int]]], dict[tuple[str, int], int | None]]


class Message(Protocol):
    """The part of a faust message the monitor reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers | None
