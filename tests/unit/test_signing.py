"""Record signatures: what is signed, what is refused, how keys are configured and rotated."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import struct
from pathlib import Path

import pytest
from confluent_kafka import Message

from agent_failover import signing
from agent_failover.config import KafkaConfig
from agent_failover.errors import CodecError, ConfigError, Refusal
from agent_failover.models import Heartbeat
from agent_failover.signing import KEY_ID_HEADER, SIGNATURE_HEADER, Signer, key_id

KEY = b"fleet-key-0123456789abcdef"
OLD = b"older-key-0123456789abcdef"
TOPIC = "af.heartbeats"
BEAT = Heartbeat("a-1", 7, 0, 1.0, 1.0, 1).encode()


@dataclasses.dataclass
class Plain:
    """A consumed record as faust and aiokafka give it (attributes)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] | None


def signed(signer: Signer, topic: str = TOPIC, key: bytes = b"a-1", value: bytes = BEAT) -> Plain:
    return Plain(topic, key, value, signer.headers(topic, key, value))


def refusal(signer: Signer, msg: Plain | Message) -> str:
    with pytest.raises(CodecError) as err:
        signer.open(Heartbeat, msg)
    assert err.value.refusal is Refusal.BAD_SIGNATURE
    return str(err.value)


def test_a_signed_record_opens_for_the_same_fleet() -> None:
    signer = Signer(KEY)
    assert signer.open(Heartbeat, signed(signer)).agent_id == "a-1"


def test_the_signature_follows_the_documented_construction() -> None:
    """docs/protocol.md, "Signatures": recomputed here without the library's code."""
    headers = dict(Signer(KEY).headers("af.control", "a-1", b"{}") or [])

    def field(data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + data

    message = b"af-sig-v1\x00" + field(b"af.control") + field(b"a-1") + field(b"{}")
    assert headers[SIGNATURE_HEADER] == hmac.new(KEY, message, hashlib.sha256).digest()
    kid = hashlib.sha256(b"af-kid-v1\x00" + KEY).hexdigest()[:16]
    assert headers[KEY_ID_HEADER] == kid.encode()
    # An absent key is written as length 0xFFFFFFFF, never as an empty key.
    assert Signer(KEY).headers("t", None, b"v") != Signer(KEY).headers("t", b"", b"v")


def test_an_unsigned_record_is_refused() -> None:
    assert "unsigned record" in refusal(Signer(KEY), Plain(TOPIC, b"a-1", BEAT, None))


@pytest.mark.parametrize(
    ("what", "change"),
    [
        ("value", {"value": BEAT.replace(b'"epoch":7', b'"epoch":8')}),
        ("key", {"key": b"a-2"}),
        ("topic", {"topic": "af.task-events"}),
    ],
)
def test_a_record_altered_or_moved_is_refused(what: str, change: dict[str, object]) -> None:
    signer = Signer(KEY)
    msg = dataclasses.replace(signed(signer), **change)  # type: ignore[arg-type]
    assert "does not match" in refusal(signer, msg), what


def test_a_record_of_another_key_is_refused_naming_the_key_id_only() -> None:
    reason = refusal(Signer(KEY), signed(Signer(OLD)))
    assert key_id(OLD) in reason
    assert OLD.decode() not in reason and KEY.decode() not in reason


def test_a_record_with_two_signatures_has_none() -> None:
    signer = Signer(KEY)
    msg = signed(signer)
    assert msg.headers is not None
    msg.headers.append((SIGNATURE_HEADER, b"x" * 32))
    assert "unsigned" in refusal(signer, msg)


def test_rotation_accepts_the_second_key_and_signs_with_the_first() -> None:
    rotating = Signer(KEY, [OLD])
    assert rotating.open(Heartbeat, signed(Signer(OLD))).epoch == 7
    assert rotating.key_id == key_id(KEY)
    # What it writes, a reader holding only the new key accepts.
    Signer(KEY).open(Heartbeat, signed(rotating))


def test_a_confluent_kafka_message_opens_too() -> None:
    signer = Signer(KEY)
    headers = signer.headers(TOPIC, b"a-1", BEAT)
    good = Message(topic=TOPIC, key=b"a-1", value=BEAT, headers=headers)  # type: ignore[arg-type]
    assert signer.open(Heartbeat, good).seq == 0
    bad = Message(topic=TOPIC, key=b"a-2", value=BEAT, headers=headers)  # type: ignore[arg-type]
    assert "does not match" in refusal(signer, bad)


def test_without_a_key_nothing_is_signed_nor_checked() -> None:
    off = Signer()
    assert not off.enabled
    assert off.headers(TOPIC, b"a-1", BEAT) is None
    assert off.open(Heartbeat, Plain(TOPIC, b"a-1", BEAT, None)).agent_id == "a-1"
    # A signed record is read by an unkeyed reader too (its headers are ignored).
    assert off.open(Heartbeat, signed(Signer(KEY))).agent_id == "a-1"


def test_a_bad_value_is_checked_for_its_signature_first() -> None:
    assert "unsigned" in refusal(Signer(KEY), Plain(TOPIC, b"a-1", b"{not json", None))


def test_keys_come_from_the_environment_or_a_mounted_file(tmp_path: Path) -> None:
    key_file = tmp_path / "signing-key"
    key_file.write_bytes(KEY + b"\n")  # a Secret created from a file often ends in a newline
    env = {"KAFKA_BOOTSTRAP_SERVERS": "h:1"}
    from_file = KafkaConfig.from_env({**env, "AGENT_FAILOVER_SIGNING_KEY_FILE": str(key_file)})
    direct = KafkaConfig.from_env({**env, "AGENT_FAILOVER_SIGNING_KEY": KEY.decode()})
    assert from_file.signer.key_id == direct.signer.key_id == key_id(KEY)
    rotating = KafkaConfig.from_env(
        {
            **env,
            "AGENT_FAILOVER_SIGNING_KEY": KEY.decode(),
            "AGENT_FAILOVER_SIGNING_KEY_PREVIOUS": OLD.decode(),
        }
    )
    rotating.signer.open(Heartbeat, signed(Signer(OLD)))
    assert not KafkaConfig.from_env(env).signer.enabled


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"signing_key": "short"}, "AGENT_FAILOVER_SIGNING_KEY must hold a key of at least 16"),
        ({"signing_key": KEY.decode(), "signing_key_file": "/k"}, "not both"),
        ({"signing_key_file": "/nonexistent/key"}, "AGENT_FAILOVER_SIGNING_KEY_FILE: cannot read"),
        ({"signing_key_previous": OLD.decode()}, "PREVIOUS is set without"),
    ],
)
def test_a_bad_key_setting_names_the_variable_never_the_key(
    settings: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        KafkaConfig("h:1", **settings)  # type: ignore[arg-type]
    for value in settings.values():
        if not value.startswith("/"):
            assert value not in str(err.value)


def test_a_key_never_shows_in_repr() -> None:
    conf = KafkaConfig("h:1", signing_key=KEY.decode(), signing_key_previous=OLD.decode())
    for text in (repr(conf), str(conf), repr(conf.signer)):
        assert KEY.decode() not in text and OLD.decode() not in text


def test_signing_off_is_said_once_per_process(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signing, "_warned", type(signing._warned)())
    with caplog.at_level(logging.WARNING, "agent_failover.signing"):
        signing.warn_if_unsigned(Signer(KEY), "agent a")
        signing.warn_if_unsigned(Signer(), "agent a")
        signing.warn_if_unsigned(Signer(), "monitor")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "record signing is off" in lines[0], lines
