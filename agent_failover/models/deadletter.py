"""The dead-letter record, and the one builder the SDK and the monitor use to write it.

A dead letter keeps a readable copy of a record that could not be used (it failed decoding or
validation, or handling it raised), so that bad input is never silently lost. The copy must fit
the broker's record limit whatever the original's size, so the key, the value and the reason are
cut, and the record says so.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Annotated, ClassVar

from msgspec import Meta

from agent_failover.errors import Refusal
from agent_failover.models.base import Record
from agent_failover.models.vocabulary import SCHEMA_VERSION, NonNegative, Version

#: At most this many characters of the original key and value, and of the reason, are kept. JSON
#: writes a character in at most 6 bytes (a control character as \u00XX), so a dead letter stays
#: under 450 KB, and its Kafka key (see :func:`cut_key`) under 1 KiB: well within the 1 MB
#: default record limit of Kafka brokers and clients.
MAX_KEY_CHARS = 1024
MAX_VALUE_CHARS = 64 * 1024
MAX_REASON_CHARS = 4096
#: The dead letter's own Kafka key is the original key cut to this many bytes.
MAX_KAFKA_KEY_BYTES = 1024


class Source(enum.StrEnum):
    """Who set a record aside: the monitor, or an agent (that record was addressed to it)."""

    MONITOR = "monitor"
    AGENT = "agent"


OriginalSize = Annotated[
    int, Meta(ge=0, description="Size of the original in bytes; absent when there was none.")
]


@dataclasses.dataclass(frozen=True, slots=True)
class DeadLetter(Record):
    """A record that could not be used. Topic `dead-letter`, key: the original key.

    The original key and value are copied as UTF-8 text (invalid bytes as replacement
    characters), cut when too long; `key_cut` / `value_cut` say whether they were, and
    `key_size` / `value_size` give the original sizes. `source` says who wrote it (absent: the
    monitor), `refusal` the reason in one word.
    """

    RECORD_TYPE: ClassVar[str] = "dead_letter"
    topic: Annotated[str, Meta(description="Topic of the bad record.")]
    partition: NonNegative
    offset: NonNegative
    reason: Annotated[str, Meta(description="Why it was refused (which field, and why).")]
    at: float
    key: Annotated[
        str | None,
        Meta(description=f"The original key as text, at most {MAX_KEY_CHARS} characters."),
    ] = None
    value: Annotated[
        str | None,
        Meta(description=f"The original value as text, at most {MAX_VALUE_CHARS} characters."),
    ] = None
    key_size: OriginalSize | None = None
    value_size: OriginalSize | None = None
    key_cut: Annotated[bool, Meta(description="Whether `key` was cut.")] = False
    value_cut: Annotated[bool, Meta(description="Whether `value` was cut.")] = False
    source: Annotated[
        Source | None, Meta(description="Who set the record aside; absent: the monitor.")
    ] = None
    refusal: Annotated[
        Refusal | None,
        Meta(description="The reason in one word, as the dead-letter metric counts it."),
    ] = None
    agent_id: Annotated[
        str | None, Meta(description="The agent that set it aside (source `agent`).")
    ] = None
    schema_version: Version = SCHEMA_VERSION


def _as_bytes(raw: bytes | str) -> bytes:
    # A str can hold lone surrogates that UTF-8 cannot: keep them as bytes that decode to U+FFFD.
    return raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)


def _cut_text(raw: bytes | str | None, limit: int) -> tuple[str | None, int | None, bool]:
    """``raw`` as text of at most ``limit`` characters, its size in bytes, and whether it was cut.

    Only the head is decoded: a character takes at most 4 bytes, so ``4 * limit`` bytes hold at
    least ``limit`` characters.
    """
    if raw is None:
        return None, None, False
    data = _as_bytes(raw)
    text = data[: 4 * limit].decode("utf-8", "replace")
    cut = len(data) > 4 * limit or len(text) > limit
    return text[:limit], len(data), cut


def cut_key(raw: bytes | str | None) -> bytes | None:
    """The Kafka key to write a dead letter under: the original key, cut to fit."""
    return None if raw is None else _as_bytes(raw)[:MAX_KAFKA_KEY_BYTES]


def internal_reason(exc: BaseException) -> str:
    """The dead-letter reason for a record whose handling raised ``exc`` unexpectedly: its type
    only (the stack belongs in the log, not in a record anyone may read)."""
    return f"internal: {type(exc).__name__}"


def dead_letter(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | str | None,
    value: bytes | str | None,
    reason: str,
    at: float,
    refusal: Refusal | None = None,
    source: Source = Source.MONITOR,
    agent_id: str | None = None,
) -> DeadLetter:
    """A :class:`DeadLetter` for a bad record, whatever its size (see the limits above)."""
    key_text, key_size, key_cut = _cut_text(key, MAX_KEY_CHARS)
    value_text, value_size, value_cut = _cut_text(value, MAX_VALUE_CHARS)
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 1] + "…"
    return DeadLetter(
        topic=topic,
        partition=partition,
        offset=offset,
        reason=reason,
        at=at,
        key=key_text,
        value=value_text,
        key_size=key_size,
        value_size=value_size,
        key_cut=key_cut,
        value_cut=value_cut,
        source=source,
        refusal=refusal,
        agent_id=agent_id,
    )
