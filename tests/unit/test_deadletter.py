"""Dead letters: one builder for the SDK and the monitor; a copy always fits the record limit."""

from __future__ import annotations

import orjson
import pytest

from agent_failover import models as m
from agent_failover.models import deadletter as dl
from agent_failover.streams import deadletters

#: librdkafka's default message.max.bytes (the smallest of the client and broker defaults).
RECORD_LIMIT = 1_000_000


def letter(key: bytes | str | None, value: bytes | str | None, reason: str = "bad") -> m.DeadLetter:
    return m.dead_letter(
        topic="af.tasks", partition=1, offset=7, key=key, value=value, reason=reason, at=1.0
    )


def test_the_monitor_and_the_sdk_share_the_builder() -> None:
    assert deadletters.dead_letter is m.dead_letter
    assert deadletters.cut_key is m.cut_key


def test_a_small_record_is_copied_whole() -> None:
    record = letter(b"a-1", b'{"oops"')
    assert (record.key, record.value, record.key_size, record.value_size) == (
        "a-1",
        '{"oops"',
        3,
        7,
    )
    assert not record.key_cut and not record.value_cut
    assert m.DeadLetter.decode(record.encode()) == record
    assert m.cut_key(b"a-1") == b"a-1"


def test_no_key_or_value_stays_absent() -> None:
    record = letter(None, None)
    assert (record.key, record.value, record.key_size, record.value_size) == (
        None,
        None,
        None,
        None,
    )
    assert "key" not in orjson.loads(record.encode())
    assert m.cut_key(None) is None


def test_invalid_utf8_becomes_replacement_characters() -> None:
    record = letter(b"\xff", b"a\xfeb")
    assert (record.key, record.value) == ("\ufffd", "a\ufffdb")
    assert m.DeadLetter.decode(record.encode()) == record


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (b"k" * 900_000, b"v" * 100_000),  # a 900 KB key: the copy used to exceed the limit
        (b"\x01" * 900_000, b"\x01" * 1_000_000),  # control characters: 6 bytes each in JSON
        (b"\xff" * 500_000, b"\xff" * 1_000_000),  # replacement characters: 3 bytes each
        ("\U0001f600" * 300_000, "\U0001f600" * 300_000),  # 4-byte characters
    ],
)
def test_a_huge_original_is_cut_to_fit_the_record_limit(
    key: bytes | str, value: bytes | str
) -> None:
    record = letter(key, value, reason="x" * 2_000_000)
    size = len(record.encode()) + len(m.cut_key(key) or b"")
    assert size < RECORD_LIMIT / 2
    assert record.key_cut and record.value_cut
    assert record.key is not None and len(record.key) == dl.MAX_KEY_CHARS
    assert record.value is not None and len(record.value) == dl.MAX_VALUE_CHARS
    original = key.encode() if isinstance(key, str) else key
    assert record.key_size == len(original)
    assert original.startswith(m.cut_key(key) or b"")
    assert len(record.reason) == dl.MAX_REASON_CHARS
    assert m.DeadLetter.decode(record.encode()) == record


def test_a_value_just_over_the_limit_in_wide_characters_is_marked_cut() -> None:
    value = "\U0001f600" * (dl.MAX_VALUE_CHARS + 1)  # 4 bytes each: the decoded head is exact
    record = letter(None, value)
    assert record.value_cut and record.value == value[: dl.MAX_VALUE_CHARS]


def test_a_lone_surrogate_in_a_text_key_is_kept_writable() -> None:
    record = letter("a\ud800b", None)
    assert record.key is not None and "\ud800" not in record.key
    assert m.DeadLetter.decode(record.encode()) == record
