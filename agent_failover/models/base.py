"""The record base class: one dataclass definition drives decoding, encoding and the schema.

Decoding parses with orjson and validates with ``msgspec.convert(..., strict=True)`` against the
dataclass itself: field types, ranges and enums come from the annotations
(:mod:`~agent_failover.models.vocabulary`), cross-field rules from :class:`Needs` and
:class:`Pins` declarations, and the same declarations generate ``schemas/*.schema.json``
(:mod:`agent_failover.models.schemagen`).
Encoding is orjson's own dataclass serialisation; absent optionals are left out.
"""

from __future__ import annotations

import dataclasses
import enum
import typing
from collections.abc import Iterator
from typing import Any, ClassVar, Self

import msgspec
import orjson

from agent_failover.errors import CodecError, Refusal
from agent_failover.models.vocabulary import MAX_JSON_DEPTH, SCHEMA_VERSION, JsonValue

#: Every top-level record carries this field; it is read before anything else is validated.
VERSION_FIELD = "schema_version"

#: Longest reason a CodecError keeps: msgspec quotes bad enum values, which can be huge.
MAX_REASON_CHARS = 1000


@dataclasses.dataclass(frozen=True, slots=True)
class Needs:
    """A cross-field rule: when ``when`` is set (to one of ``values``, if given), ``fields`` are.

    "Set" means present and not null, for the decoder and the generated schema alike.
    """

    fields: tuple[str, ...]
    when: str
    values: tuple[str, ...] | None = None

    def check(self, record: Record) -> str | None:
        """The reason ``record`` breaks this rule, or None."""
        value = getattr(record, self.when)
        if value is None or (self.values is not None and value not in self.values):
            return None
        missing = [f for f in self.fields if getattr(record, f) is None]
        if not missing:
            return None
        subject = f"{self.when} {str(value)!r}" if self.values is not None else repr(self.when)
        return f"{subject} needs " + " and ".join(repr(f) for f in missing)


@dataclasses.dataclass(frozen=True, slots=True)
class Pins:
    """A cross-field rule: when ``when`` is one of ``values``, ``field`` equals ``value``."""

    field: str
    value: str | int
    when: str
    values: tuple[str | int, ...]

    def check(self, record: Record) -> str | None:
        """The reason ``record`` breaks this rule, or None."""
        value = getattr(record, self.when)
        if value is None or value not in self.values or getattr(record, self.field) == self.value:
            return None
        return f"{self.when} {_shown(value)} needs {self.field!r} = {_shown(self.value)}"


def _shown(value: Any) -> str:
    """A rule's value as the JSON reader wrote it: ``'new'``, ``1``."""
    return repr(value.value if isinstance(value, enum.Enum) else value)


#: A record's cross-field rules.
Rule = Needs | Pins


def together(a: str, b: str) -> tuple[Needs, Needs]:
    """Rules saying fields ``a`` and ``b`` are both set or both absent."""
    return Needs((b,), when=a), Needs((a,), when=b)


@dataclasses.dataclass(frozen=True, slots=True)
class _Plan:
    """What the generic code needs to know about one record class, worked out once."""

    names: tuple[str, ...]  # every field, in order
    optional: tuple[str, ...]  # fields left out of the encoding when None
    json_fields: tuple[str, ...]  # fields holding free JSON values (depth-checked)
    native: bool  # orjson's own dataclass encoding is the wire form (nothing to leave out)


def _cut(text: str, limit: int = MAX_REASON_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def too_deep(value: Any, limit: int) -> bool:
    """Whether ``value`` nests more than ``limit`` arrays/objects (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if type(item) is dict else item
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if type(c) is dict or type(c) is list)
    return False


def _nested_records(hint: Any) -> Iterator[type[Record]]:
    """Record classes a field's type refers to (through Optional, tuples and Annotated)."""
    if isinstance(hint, type) and issubclass(hint, Record):
        yield hint
    for arg in typing.get_args(hint):
        yield from _nested_records(arg)


class Record:
    """Base of every wire record: ``encode()`` to bytes, ``decode(bytes)`` back.

    Subclasses are frozen slotted dataclasses. ``RECORD_TYPE`` names the record (and its schema
    file, for top-level records); ``RULES`` are its cross-field rules, checked on construction
    and on decode and written into the schema.
    """

    __slots__ = ()
    RECORD_TYPE: ClassVar[str]
    RULES: ClassVar[tuple[Rule, ...]] = ()
    _plans: ClassVar[dict[type[Record], _Plan]] = {}

    def __post_init__(self) -> None:
        cls = type(self)
        plan = cls._plans.get(cls) or cls._plan()
        for name in plan.json_fields:
            value = getattr(self, name)
            if (type(value) is dict or type(value) is list) and too_deep(value, MAX_JSON_DEPTH):
                raise self._error(f"field {name!r} nests deeper than {MAX_JSON_DEPTH} levels")
        for rule in cls.RULES:
            reason = rule.check(self)
            if reason is not None:
                raise self._error(reason)
        reason = self._consistency()
        if reason is not None:
            raise self._error(reason)

    def _consistency(self) -> str | None:
        """Why this record breaks a rule the schema cannot state (fields that must agree), or
        None; checked on construction and on decode, like ``RULES``."""
        return None

    @classmethod
    def _error(cls, reason: str, refusal: Refusal = Refusal.INVALID) -> CodecError:
        return CodecError(
            f"invalid {cls.RECORD_TYPE} record: {_cut(reason)}",
            record_type=cls.RECORD_TYPE,
            refusal=refusal,
        )

    @classmethod
    def _plan(cls) -> _Plan:
        hints = typing.get_type_hints(cls, include_extras=True)
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        optional = tuple(f.name for f in fields if f.default is None)
        json_fields = tuple(
            f.name
            for f in fields
            if any(isinstance(m, JsonValue) for m in getattr(hints[f.name], "__metadata__", ()))
        )
        nested = {n for f in fields for n in _nested_records(hints[f.name])} - {cls}
        native = not optional and all((n._plans.get(n) or n._plan()).native for n in nested)
        names = tuple(f.name for f in fields)
        plan = cls._plans[cls] = _Plan(names, optional, json_fields, native)
        return plan

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict (enums as strings, absent optionals left out)."""
        out = _plain(self)
        assert isinstance(out, dict)
        return out

    def encode(self) -> bytes:
        """Serialise to compact JSON bytes; raises :class:`CodecError` if it cannot be written."""
        cls = type(self)
        plan = cls._plans.get(cls) or cls._plan()
        try:
            if plan.native:
                return orjson.dumps(self)
            return orjson.dumps(self, default=_without_absent, option=_PASSTHROUGH)
        except orjson.JSONEncodeError as exc:
            raise CodecError(
                f"cannot encode {cls.RECORD_TYPE} record: {exc}", record_type=cls.RECORD_TYPE
            ) from exc

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """Build and validate from a decoded JSON object (``schema_version`` is not required)."""
        try:
            return msgspec.convert(data, type=cls, strict=True)
        except msgspec.ValidationError as exc:
            reason = str(exc)
            prefix = f"invalid {cls.RECORD_TYPE} record: "
            # A rule broken at the top level already says which record it is.
            raise cls._error(reason.removeprefix(prefix)) from None

    @classmethod
    def decode(cls, raw: bytes | bytearray | memoryview | str | None) -> Self:
        """Parse and validate ``raw``; raises :class:`CodecError` with the reason on bad input.

        A missing field, a wrong type, a value out of range, an unknown enum value, a broken
        cross-field rule or an unknown ``schema_version`` are refused; unknown extra fields are
        ignored (newer minor versions of a producer stay readable).
        """
        if raw is None:
            raise cls._error("empty value (tombstone)", Refusal.NOT_JSON)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise cls._error(f"not JSON ({exc})", Refusal.NOT_JSON) from exc
        if type(data) is not dict:
            raise cls._error(f"expected a JSON object, got {type(data).__name__}")
        check_version(cls, data)
        return cls.from_dict(data)


def check_version(cls: type[Record], data: dict[str, Any]) -> None:
    """Refuse a top-level record whose ``schema_version`` is missing, not an integer or unknown.

    Checked before the other fields: a record of another version may have another shape.
    """
    version = data.get(VERSION_FIELD)
    if version is None:
        raise cls._error(f"missing field {VERSION_FIELD!r}")
    if type(version) is not int:
        raise cls._error(
            f"field {VERSION_FIELD!r} must be an integer, got {type(version).__name__}"
        )
    if not 1 <= version <= SCHEMA_VERSION:
        raise cls._error(
            f"{VERSION_FIELD} {version} is not supported (this library reads 1..{SCHEMA_VERSION})",
            Refusal.UNSUPPORTED_VERSION,
        )


_PASSTHROUGH = orjson.OPT_PASSTHROUGH_DATACLASS


def _without_absent(obj: Any) -> dict[str, Any]:
    """orjson ``default``: a record as a dict without its absent optionals (nested ones too)."""
    if not isinstance(obj, Record):
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
    cls = type(obj)
    plan = cls._plans.get(cls) or cls._plan()
    out = {name: getattr(obj, name) for name in plan.names}
    for name in plan.optional:
        if out[name] is None:
            del out[name]
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return {k: _plain(v) for k, v in _without_absent(value).items()}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value
