"""Building dead-letter records for input that failed decoding or validation."""

from __future__ import annotations

from agent_failover.models import DeadLetter

#: The original value is kept up to this many characters (the schema says "cut at 64 KiB").
MAX_VALUE_CHARS = 64 * 1024


def _text(raw: bytes | str | None) -> str | None:
    if raw is None:
        return None
    return raw if isinstance(raw, str) else raw.decode("utf-8", errors="replace")


def dead_letter(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | str | None,
    value: bytes | str | None,
    reason: str,
    at: float,
) -> DeadLetter:
    """A :class:`DeadLetter` for a bad record, key and value as UTF-8 with replacement chars."""
    text = _text(value)
    return DeadLetter(
        topic=topic,
        partition=partition,
        offset=offset,
        reason=reason,
        at=at,
        key=_text(key),
        value=text[:MAX_VALUE_CHARS] if text is not None else None,
    )
