"""Record signatures: every record a component writes carries its writer's proof, and readers
refuse records without a valid one.

The proof is an HMAC-SHA256 with the fleet's signing key over the record's topic (its full name,
prefix included), key and value, sent in the Kafka record header :data:`SIGNATURE_HEADER`; the
header :data:`KEY_ID_HEADER` names the key, so that during a rotation readers can accept a second
key (the previous one, or the next one before anybody signs with it). ``docs/protocol.md`` gives
the exact bytes, so agents in other languages can sign too; ``docs/security.md`` what it proves.

:class:`Signer` is the one object every write and read point uses:

* writers add ``signer.headers(topic, key, value)`` to the record they produce;
* readers decode with ``signer.open(RecordClass, msg)``, which refuses an unsigned or badly
  signed record with a :class:`~agent_failover.errors.CodecError` whose refusal is
  ``bad_signature`` before the value is even parsed.

Without a key (the default) nothing is signed and nothing is checked; the first component that
starts in a process says so once (:func:`warn_if_unsigned`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import struct
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from agent_failover.errors import CodecError, ConfigError, Refusal

if TYPE_CHECKING:  # the SDK imports config, config imports this: keep it light at run time
    from confluent_kafka import Message as ConfluentMessage

    from agent_failover.models import Record

log = logging.getLogger(__name__)

#: Header holding the 32 raw bytes of the HMAC-SHA256.
SIGNATURE_HEADER = "af-sig"
#: Header holding the id of the key that signed (16 ASCII hex characters, see :func:`key_id`).
KEY_ID_HEADER = "af-kid"
#: Shortest key accepted, in bytes: a key is a secret, not a password to remember.
MIN_KEY_BYTES = 16

KEY_ENV = "AGENT_FAILOVER_SIGNING_KEY"
KEY_FILE_ENV = "AGENT_FAILOVER_SIGNING_KEY_FILE"
PREVIOUS_ENV = "AGENT_FAILOVER_SIGNING_KEY_PREVIOUS"
PREVIOUS_FILE_ENV = "AGENT_FAILOVER_SIGNING_KEY_PREVIOUS_FILE"

_MAC_LABEL = b"af-sig-v1\x00"
_KID_LABEL = b"af-kid-v1\x00"
_NULL = 0xFFFFFFFF  # the length written for an absent key or value
_R = TypeVar("_R", bound="Record")

#: Kafka record headers as the clients give them: a list of pairs, or a mapping.
Headers = Sequence[tuple[str, str | bytes | None]] | Mapping[str, str | bytes | None]


class PlainMessage(Protocol):
    """A consumed record with attributes (faust's and aiokafka's); confluent-kafka's
    :class:`~confluent_kafka.Message` has methods instead, and is accepted too."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers | None


def key_id(key: bytes) -> str:
    """The id a key is named by in :data:`KEY_ID_HEADER`: the first 8 bytes of
    SHA-256(``af-kid-v1\\0`` + key), in hex. It names the key without revealing it."""
    return hashlib.sha256(_KID_LABEL + key).hexdigest()[:16]


def _length(data: bytes | None) -> bytes:
    return struct.pack(">I", _NULL if data is None else len(data))


def signed_bytes(topic: str, key: bytes | None, value: bytes | None) -> bytes:
    """What the signature covers: a label, then topic, key and value, each after its length
    (4 bytes, big-endian; ``0xFFFFFFFF`` for an absent key or value), so that no two records
    give the same bytes."""
    name = topic.encode()
    return b"".join(
        (_MAC_LABEL, _length(name), name, _length(key), key or b"", _length(value), value or b"")
    )


class Signer:
    """Signs records with ``key`` and accepts records signed with ``key`` or any of
    ``accepted``. ``Signer()`` (no key) signs nothing and accepts everything. Thread-safe."""

    def __init__(self, key: bytes | None = None, accepted: Iterable[bytes] = ()) -> None:
        self._kid = key_id(key) if key is not None else None
        self._headers_kid = self._kid.encode() if self._kid is not None else b""
        # Pre-keyed HMAC objects (OpenSSL's, by the digest's name), by key id as the header
        # carries it: copying one skips the key schedule on every record.
        self._macs = {
            key_id(k).encode(): hmac.new(k, None, "sha256") for k in (*accepted, key) if k
        }

    @classmethod
    def from_settings(
        cls,
        key: str | None = None,
        key_file: str | None = None,
        previous: str | None = None,
        previous_file: str | None = None,
    ) -> Signer:
        """The signer of a configuration: the key given directly or in a file (a mounted
        Secret), and an optional second key accepted for verification.

        Raises :class:`ConfigError` naming the variable (never the key) when both forms of one
        key are set, a file cannot be read, a key is shorter than :data:`MIN_KEY_BYTES`, or only
        a previous key is set.
        """
        current = _one_key(key, key_file, KEY_ENV, KEY_FILE_ENV)
        other = _one_key(previous, previous_file, PREVIOUS_ENV, PREVIOUS_FILE_ENV)
        if other is not None and current is None:
            raise ConfigError(
                f"{PREVIOUS_ENV} is set without {KEY_ENV}: a fleet that checks signatures must "
                "also sign (set the current key too)"
            )
        return cls(current, [other] if other is not None else [])

    @property
    def enabled(self) -> bool:
        """True when records are signed and checked."""
        return self._kid is not None

    @property
    def key_id(self) -> str | None:
        """The id of the signing key (None: signing is off)."""
        return self._kid

    def __repr__(self) -> str:
        return f"<Signer key_id={self._kid} accepts={sorted(k.decode() for k in self._macs)}>"

    def _mac(self, kid: bytes, topic: str, key: bytes | None, value: bytes | None) -> bytes:
        mac = self._macs[kid].copy()
        mac.update(signed_bytes(topic, key, value))
        return mac.digest()

    def headers(
        self, topic: str, key: str | bytes | None, value: bytes | None
    ) -> list[tuple[str, str | bytes | None]] | None:
        """The headers that sign this record (None when signing is off), in the form every
        client's ``produce`` / ``send`` takes."""
        if self._kid is None:
            return None
        raw_key = key.encode() if isinstance(key, str) else key
        signature = self._mac(self._headers_kid, topic, raw_key, value)
        return [(SIGNATURE_HEADER, signature), (KEY_ID_HEADER, self._headers_kid)]

    def check(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers | None
    ) -> None:
        """Raise :class:`CodecError` (refusal ``bad_signature``) unless the record is signed by
        an accepted key. Does nothing when signing is off."""
        if self._kid is None:
            return
        signature, kid = _ours(headers)
        if signature is None:
            raise _refused(f"unsigned record (no {SIGNATURE_HEADER} header): its writer has no "
                           f"signing key ({KEY_ENV})")  # fmt: skip
        if kid is None or kid not in self._macs:
            name = kid.decode(errors="replace")[:64] if kid else f"(no {KEY_ID_HEADER} header)"
            raise _refused(
                f"signed with key {name}, which this reader does not hold "
                f"({KEY_ENV}, {PREVIOUS_ENV})"
            )
        if not hmac.compare_digest(signature, self._mac(kid, topic, key, value)):
            name = kid.decode()
            raise _refused(
                f"signature does not match (key {name}): the record was altered, copied from "
                "another topic or key, or signed with another key of the same id"
            )

    def open(self, cls: type[_R], msg: ConfluentMessage | PlainMessage) -> _R:
        """Check the signature of a consumed record, then decode its value as ``cls``.

        The one call of every decode site: ``msg`` is a confluent-kafka message or a faust /
        aiokafka one. Raises :class:`CodecError`: refusal ``bad_signature`` before anything is
        parsed, or the decoder's own refusal.
        """
        if callable(msg.value):  # confluent-kafka: accessor methods
            value = msg.value()
            if self._kid is not None:
                self.check(msg.topic() or "", msg.key(), value, msg.headers())
        else:
            value = msg.value
            if self._kid is not None:
                self.check(msg.topic, msg.key, value, msg.headers)
        return cls.decode(value)


def _refused(reason: str) -> CodecError:
    return CodecError(f"bad signature: {reason}", refusal=Refusal.BAD_SIGNATURE)


def _ours(headers: Headers | None) -> tuple[bytes | None, bytes | None]:
    """The signature and key id headers (one pass: this is the heartbeat hot path); a header
    a record carries twice has no value that counts."""
    signature = kid = None
    signatures = kids = 0
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    for name, value in pairs:
        if name == SIGNATURE_HEADER:
            signature, signatures = value, signatures + 1
        elif name == KEY_ID_HEADER:
            kid, kids = value, kids + 1
    return (_bytes(signature) if signatures == 1 else None, _bytes(kid) if kids == 1 else None)


def _bytes(value: str | bytes | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def _one_key(text: str | None, path: str | None, env: str, file_env: str) -> bytes | None:
    if text is not None and path is not None:
        raise ConfigError(f"set {env} or {file_env}, not both")
    if path is not None:
        try:
            raw = Path(path).read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"{file_env}: cannot read {path}: {exc.strerror or exc}") from None
        name = f"{file_env} ({path})"
    elif text is not None:
        raw, name = text.strip().encode(), env
    else:
        return None
    if len(raw) < MIN_KEY_BYTES:
        raise ConfigError(
            f"{name} must hold a key of at least {MIN_KEY_BYTES} bytes, got {len(raw)} "
            "(generate one with: openssl rand -base64 32)"
        )
    return raw


_warned = threading.Event()


def warn_if_unsigned(signer: Signer, component: str) -> None:
    """Say once per process, at the start of the first component, that signing is off."""
    if signer.enabled or _warned.is_set():
        return
    _warned.set()
    log.warning(
        "%s: record signing is off (%s unset): records are neither signed nor checked, so any "
        "client that can write to the topics can forge heartbeats, decisions, tasks and "
        "checkpoints (docs/security.md)",
        component,
        KEY_ENV,
    )
