"""The schema files in schemas/ are generated from the models, and they agree with the decoder."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_failover import models
from agent_failover.errors import CodecError
from agent_failover.models import schemagen as schemas
from tests.unit.samples import SAMPLES

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


def load_schema(record_type: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMA_DIR / f"{record_type}.schema.json").read_text())
    return data


def test_committed_schema_files_are_what_the_generator_writes() -> None:
    assert schemas.stale_files(SCHEMA_DIR) == [], "schemas/ is stale: run `make schemas`"


def test_every_record_type_has_a_schema_file_and_no_more() -> None:
    files = {p.name.removesuffix(".schema.json") for p in SCHEMA_DIR.glob("*.schema.json")}
    assert files == set(models.RECORD_TYPES)


def test_the_check_flags_edited_missing_and_left_over_files(tmp_path: Path) -> None:
    assert schemas.main([str(tmp_path)]) == 0
    assert schemas.main(["--check", str(tmp_path)]) == 0
    (tmp_path / "heartbeat.schema.json").write_text("{}\n")
    (tmp_path / "task.schema.json").unlink()
    (tmp_path / "gone.schema.json").write_text("{}\n")
    assert schemas.stale_files(tmp_path) == [
        "gone.schema.json",
        "heartbeat.schema.json",
        "task.schema.json",
    ]
    assert schemas.main(["--check", str(tmp_path)]) == 1
    assert schemas.main([str(tmp_path)]) == 0
    assert schemas.stale_files(tmp_path) == []
    assert not (tmp_path / "gone.schema.json").exists()


@pytest.mark.parametrize("record_type", sorted(models.RECORD_TYPES))
def test_schema_is_valid_draft_2020_12(record_type: str) -> None:
    schema = load_schema(record_type)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["required"][-1] == "schema_version"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_descriptions_come_from_the_models() -> None:
    heartbeat = load_schema("heartbeat")
    assert (
        heartbeat["description"]
        == "Liveness and load of one agent epoch. Topic `heartbeats`, key: agent_id."
    )
    assert heartbeat["properties"]["epoch"]["maximum"] == models.MAX_INT63
    assert heartbeat["properties"]["pool"]["enum"] == sorted(p.value for p in models.Pool)
    control = load_schema("control")
    assert control["$defs"]["plan_entry"]["properties"]["attempt"]["minimum"] == 2


@pytest.mark.parametrize(("record_type", "record"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_samples_validate_and_round_trip(record_type: str, record: models.Record) -> None:
    encoded = record.encode()
    jsonschema.validate(json.loads(encoded), load_schema(record_type))
    assert type(record).decode(encoded) == record


def decoder_accepts(record_type: str, data: dict[str, Any]) -> bool:
    try:
        models.RECORD_TYPES[record_type].decode(orjson.dumps(data))
    except CodecError:
        return False
    return True


def agree(record_type: str, data: dict[str, Any]) -> bool:
    """Schema and decoder agree, except on what JSON Schema cannot state: a checkpoint reference
    that disagrees with the record around it (other task, attempt or epoch) is valid to the
    schema and refused by the decoder (docs/protocol.md)."""
    try:
        models.RECORD_TYPES[record_type].decode(orjson.dumps(data))
    except CodecError as exc:
        return not schema_accepts(record_type, data) or "its checkpoint is" in str(exc)
    return schema_accepts(record_type, data)


@functools.cache
def validator(record_type: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema(record_type))


def schema_accepts(record_type: str, data: dict[str, Any]) -> bool:
    return bool(validator(record_type).is_valid(data))


def changed(record_type: str, **changes: Any) -> tuple[str, dict[str, Any]]:
    """The first sample of ``record_type`` with ``changes`` (``...`` removes a field)."""
    sample = next(r for t, r in SAMPLES if t == record_type).to_dict()
    data = {**sample, **changes}
    return record_type, {k: v for k, v in data.items() if v is not ...}


INVALID = [
    changed("heartbeat", schema_version=True),
    changed("heartbeat", schema_version=2),
    changed("heartbeat", schema_version=...),
    changed("heartbeat", epoch=2**63),
    changed("heartbeat", epoch=-1),
    changed("heartbeat", capacity=True),
    changed("heartbeat", interval_s=0),
    changed("heartbeat", pool="spare"),
    changed("task", task_id=""),
    changed("task", schema_version=...),
    changed("checkpoint", state=...),
    changed("task_event", kind="claimed", task=...),
    changed("task_event", kind="claimed", task=None),
    changed("task_event", kind="checkpointed", checkpoint=...),
    changed("task_event", kind="completed", task_id=None),
    changed("control", plan=[{"task_id": "t", "attempt": 2, "target_agent_id": "b"}]),
    changed("control", plan=[{"task_id": "t", "attempt": 1}]),
    changed("redispatch", target_agent_id=...),
    changed("redispatch", attempt=1),  # a moved task
    changed("redispatch", from_epoch=...),
    ("redispatch", {**SAMPLES[-1][1].to_dict(), "attempt": 2}),  # new work
    ("redispatch", {**SAMPLES[-1][1].to_dict(), "source": None}),
    changed("failover", moved=[{"task_id": "t", "attempt": 0}]),
    changed("dead_letter", key_size=-1),
    changed("fleet_summary", partitions=[-1]),
    changed("task_outcome", kind="failed", result=None),
    changed("task_outcome", kind="released"),
    changed("task_outcome", attempt=0),
    changed("task_outcome", agent_id=""),
    changed("fleet_summary", agents=[{"agent_id": "a", "epoch": 1, "capacity": 1}]),
]


@pytest.mark.parametrize(("record_type", "data"), INVALID, ids=[i[0] for i in INVALID])
def test_schema_and_decoder_both_refuse(record_type: str, data: dict[str, Any]) -> None:
    assert not schema_accepts(record_type, data)
    assert not decoder_accepts(record_type, data)


def _ref(**changes: Any) -> dict[str, Any]:
    ref = {"partition": 0, "offset": 1, "step": 0, "task_id": "t-1", "attempt": 1, "epoch": 7}
    return {**ref, **changes}


DISAGREEING = [
    changed("task_event", kind="checkpointed", checkpoint=_ref(epoch=8)),
    changed("task_event", kind="checkpointed", checkpoint=_ref(attempt=2)),
    changed("task_event", kind="checkpointed", checkpoint=_ref(task_id="t-2")),
    changed("task_event", kind="released", checkpoint=_ref(task_id="t-2")),
    changed("task_event", kind="released", checkpoint=_ref(attempt=2)),
    changed("redispatch", checkpoint=_ref(attempt=2)),
    changed("redispatch", checkpoint=_ref(task_id="t-2")),
    changed("control", plan=[{"task_id": "t-1", "attempt": 2, "checkpoint": _ref(attempt=3)}]),
]


@pytest.mark.parametrize(("record_type", "data"), DISAGREEING, ids=[i[0] for i in DISAGREEING])
def test_a_checkpoint_reference_that_disagrees_with_its_record_is_refused(
    record_type: str, data: dict[str, Any]
) -> None:
    with pytest.raises(CodecError, match="its checkpoint is"):
        models.RECORD_TYPES[record_type].decode(orjson.dumps(data))


def test_a_released_attempt_may_name_the_checkpoint_it_resumed_from() -> None:
    resumed = changed("task_event", kind="released", attempt=2, checkpoint=_ref(epoch=3))[1]
    assert decoder_accepts("task_event", resumed) and schema_accepts("task_event", resumed)


PROBES: list[Any] = [
    ...,  # removed
    None,
    True,
    -1,
    0,
    1,
    2,
    2**63 - 1,
    2**63,
    0.5,
    -0.5,
    "",
    "x",
    "active",
    "claimed",
    "fence",
    "heartbeat_timeout",
    "new",
    [],
    ["x"],
    [-1],
    {},
    {"x": 1},
]


def mutated(record: models.Record, name: str, value: Any) -> dict[str, Any]:
    data = record.to_dict()
    if value is ...:
        data.pop(name, None)
    else:
        data[name] = value
    return data


@pytest.mark.parametrize(("record_type", "record"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_schema_and_decoder_agree_on_every_field_with_probe_values(
    record_type: str, record: models.Record
) -> None:
    """Every field of a valid sample, removed or replaced by each probe value in turn."""
    for name in models.RECORD_TYPES[record_type].__dataclass_fields__:
        for value in PROBES:
            data = mutated(record, name, value)
            assert agree(record_type, data), data


# Integer-valued floats (1.0) are left out: JSON Schema counts them as integers, the decoder
# (like most typed readers) does not; docs/protocol.md says to write integers as integers.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-2, 3)
    | st.sampled_from([-(2**63), 2**63 - 1, 2**63, 2**64 - 1])
    | st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer())
    | st.text(max_size=4)
    | st.sampled_from(
        ["", "active", "standby", "claimed", "checkpointed", "fence", "heartbeat_timeout", "new"]
    )
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


@pytest.mark.parametrize(("record_type", "record"), SAMPLES, ids=[s[0] for s in SAMPLES])
@settings(derandomize=True, deadline=None, max_examples=60)
@given(field_index=st.integers(0, 30), value=json_values | st.just(...))
def test_schema_and_decoder_agree_on_generated_records(
    record_type: str, record: models.Record, field_index: int, value: Any
) -> None:
    """One field of a valid sample replaced by any JSON value, or removed."""
    names = [*models.RECORD_TYPES[record_type].__dataclass_fields__, "unknown_field"]
    data = mutated(record, names[field_index % len(names)], value)
    assert agree(record_type, data), data
