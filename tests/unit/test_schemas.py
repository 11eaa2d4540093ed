"""The schema files in schemas/ and the dataclasses in agent_failover.models stay in sync."""

from __future__ import annotations

import dataclasses
import enum
import json
import typing
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from agent_failover import models
from tests.unit.samples import SAMPLES

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


def load_schema(record_type: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMA_DIR / f"{record_type}.schema.json").read_text())
    return data


def test_every_record_type_has_a_schema_file_and_no_more() -> None:
    files = {p.name.removesuffix(".schema.json") for p in SCHEMA_DIR.glob("*.schema.json")}
    assert files == set(models.RECORD_TYPES)


@pytest.mark.parametrize("record_type", sorted(models.RECORD_TYPES))
def test_schema_is_valid_draft_2020_12(record_type: str) -> None:
    schema = load_schema(record_type)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def _check_object(cls: type[models.Record], schema: dict[str, Any], defs: dict[str, Any]) -> None:
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    assert set(schema["properties"]) == set(fields), cls.__name__
    required = set(schema.get("required", []))
    for name, f in fields.items():
        has_default = not (
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        )
        if not has_default:
            assert name in required, f"{cls.__name__}.{name} has no default: schema must require it"
    hints = typing.get_type_hints(cls)
    for name, prop in schema["properties"].items():
        target = prop.get("$ref") or prop.get("items", {}).get("$ref")
        if target:
            nested_name = target.rsplit("/", 1)[-1]
            nested = typing.get_args(hints[name]) or (hints[name],)
            nested_cls = next(t for t in nested if isinstance(t, type) and t is not type(None))
            if nested_cls is not type(None) and issubclass(nested_cls, models.Record):
                assert nested_name == nested_cls.RECORD_TYPE
                _check_object(nested_cls, defs[nested_name], defs)


@pytest.mark.parametrize("record_type", sorted(models.RECORD_TYPES))
def test_fields_match_dataclass(record_type: str) -> None:
    schema = load_schema(record_type)
    _check_object(models.RECORD_TYPES[record_type], schema, schema.get("$defs", {}))


@pytest.mark.parametrize("record_type", sorted(models.RECORD_TYPES))
def test_enums_match(record_type: str) -> None:
    schema = load_schema(record_type)
    hints = typing.get_type_hints(models.RECORD_TYPES[record_type])
    for name, hint in hints.items():
        enum_cls = next(
            (
                t
                for t in (typing.get_args(hint) or (hint,))
                if isinstance(t, type) and issubclass(t, enum.Enum)
            ),
            None,
        )
        if enum_cls is not None:
            assert schema["properties"][name]["enum"] == [m.value for m in enum_cls], name


@pytest.mark.parametrize(("record_type", "record"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_samples_validate_and_round_trip(record_type: str, record: models.Record) -> None:
    encoded = record.encode()
    jsonschema.validate(json.loads(encoded), load_schema(record_type))
    assert type(record).decode(encoded) == record
