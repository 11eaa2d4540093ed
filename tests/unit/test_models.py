"""Codecs: every record round-trips; bad input raises CodecError with a reason, never crashes."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import orjson
import pytest

from agent_failover import models as m
from agent_failover.errors import AgentFailoverError, CodecError, Refusal
from agent_failover.streams.state import (
    AgentRecord,
    SlotStatus,
    TaskSlot,
    decode_record,
    encode_record,
)
from tests.unit.samples import SAMPLES, TASK

HEARTBEAT = dict(SAMPLES[0][1].to_dict())


def hb(**changes: object) -> bytes:
    data = {**HEARTBEAT, **changes}
    return orjson.dumps({k: v for k, v in data.items() if v is not ...})


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "not JSON"),
        (b"{oops", "not JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (None, "tombstone"),
        (hb(agent_id=...), "missing required field `agent_id`"),
        (hb(agent_id=""), "Expected `str` of length >= 1 - at `$.agent_id`"),
        (hb(agent_id=None), "Expected `str`, got `null` - at `$.agent_id`"),
        (hb(epoch="7"), "Expected `int`, got `str` - at `$.epoch`"),
        (hb(epoch=True), "Expected `int`, got `bool` - at `$.epoch`"),
        (hb(epoch=7.0), "Expected `int`, got `float` - at `$.epoch`"),
        (hb(epoch=-1), "Expected `int` >= 0 - at `$.epoch`"),
        (hb(epoch=2**63), "Expected `int` <= 9223372036854775807 - at `$.epoch`"),
        (hb(seq=-1), "Expected `int` >= 0 - at `$.seq`"),
        (hb(interval_s=0), "Expected `float` > 0.0 - at `$.interval_s`"),
        (hb(pool="spare"), "Invalid enum value 'spare' - at `$.pool`"),
        (hb(in_flight=[1]), "Expected `str`, got `int` - at `$.in_flight[0]`"),
        (hb(draining=1), "Expected `bool`, got `int` - at `$.draining`"),
        (hb(schema_version=2), "schema_version 2 is not supported"),
        (hb(schema_version=0), "schema_version 0 is not supported"),
        (hb(schema_version=True), "'schema_version' must be an integer, got bool"),
        (hb(schema_version="1"), "'schema_version' must be an integer, got str"),
        (hb(schema_version=...), "missing field 'schema_version'"),
    ],
)
def test_invalid_heartbeats_are_rejected_with_a_reason(raw: bytes | None, reason: str) -> None:
    with pytest.raises(CodecError, match="invalid heartbeat record") as info:
        m.Heartbeat.decode(raw)
    assert reason in str(info.value)
    assert info.value.record_type == "heartbeat"
    assert isinstance(info.value, AgentFailoverError)
    assert not info.value.retryable


def test_epochs_are_63_bit() -> None:
    assert m.Heartbeat.decode(hb(epoch=2**63 - 1)).epoch == 2**63 - 1
    assert m.Heartbeat.decode(hb(epoch=0)).epoch == 0


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    record = m.Heartbeat.decode(hb(new_field={"x": 1}))
    assert record == SAMPLES[0][1]


def test_integer_times_are_accepted_as_floats() -> None:
    decoded = m.Heartbeat.decode(hb(sent_at=10))
    assert decoded.sent_at == 10.0 and type(decoded.sent_at) is float


def test_a_huge_enum_value_does_not_make_a_huge_reason() -> None:
    with pytest.raises(CodecError) as info:
        m.Heartbeat.decode(hb(pool="x" * 100_000))
    assert len(str(info.value)) < 1100


EVENT = {"agent_id": "a", "epoch": 1, "at": 1.0, "schema_version": 1}


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"kind": "claimed"}, "kind 'claimed' needs 'task_id' and 'attempt'"),
        ({"kind": "claimed", "task_id": "t", "attempt": 1}, "kind 'claimed' needs 'task'"),
        (
            {"kind": "claimed", "task_id": "t", "attempt": 1, "task": None},
            "kind 'claimed' needs 'task'",
        ),
        (
            {"kind": "checkpointed", "task_id": "t", "attempt": 1},
            "kind 'checkpointed' needs 'checkpoint'",
        ),
        (
            {"kind": "completed", "task_id": "t", "attempt": 0},
            "Expected `int` >= 1 - at `$.attempt`",
        ),
        ({"kind": "exploded"}, "Invalid enum value 'exploded' - at `$.kind`"),
    ],
)
def test_invalid_task_events(event: dict[str, object], reason: str) -> None:
    with pytest.raises(CodecError) as info:
        m.TaskEvent.decode(orjson.dumps({**EVENT, **event}))
    assert str(info.value) == f"invalid task_event record: {reason}"


def test_cross_field_rules_also_hold_when_constructing() -> None:
    with pytest.raises(CodecError, match="kind 'claimed' needs 'task'"):
        m.TaskEvent(kind=m.EventKind.CLAIMED, agent_id="a", epoch=1, at=1.0, task_id="t", attempt=1)
    with pytest.raises(CodecError, match="'target_epoch' needs 'target_agent_id'"):
        m.PlanEntry(task_id="t", attempt=2, target_epoch=3)


def test_nested_errors_name_the_nested_field() -> None:
    bad = SAMPLES[7][1].to_dict()
    bad["checkpoint"] = {"partition": 0, "offset": -1, "step": 0}
    with pytest.raises(
        CodecError,
        match=r"invalid redispatch record: Expected `int` >= 0 - at `\$.checkpoint.offset`",
    ):
        m.Redispatch.decode(orjson.dumps(bad))


def test_a_broken_rule_in_a_nested_record_says_where() -> None:
    control = SAMPLES[6][1].to_dict()
    control["plan"] = [{"task_id": "t", "attempt": 2, "target_agent_id": "b"}]
    with pytest.raises(CodecError) as info:
        m.Control.decode(orjson.dumps(control))
    assert "'target_agent_id' needs 'target_epoch' - at `$.plan[0]`" in str(info.value)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"attempt": 1}, "attempt 1 needs 'reason' = 'new'"),
        ({"attempt": 0}, r"Expected `int` >= 1 - at `\$.attempt`"),
        ({"from_agent_id": None}, "reason 'heartbeat_timeout' needs 'from_agent_id'"),
    ],
)
def test_a_moved_task_has_attempt_two_or_more_and_says_where_from(
    change: dict[str, object], reason: str
) -> None:
    data = {**SAMPLES[7][1].to_dict(), **change}
    with pytest.raises(CodecError, match=reason):
        m.Redispatch.decode(orjson.dumps(data))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"attempt": 2}, "reason 'new' needs 'attempt' = 1"),
        ({"source": None}, "reason 'new' needs 'source'"),
        ({"source": {"partition": 1}}, r"missing required field `offset` - at `\$.source`"),
    ],
)
def test_new_work_is_attempt_one_and_says_where_it_lies(
    change: dict[str, object], reason: str
) -> None:
    data = {**SAMPLES[-1][1].to_dict(), **change}
    with pytest.raises(CodecError, match=reason):
        m.Redispatch.decode(orjson.dumps(data))


def test_from_dict_validates_without_requiring_a_schema_version() -> None:
    assert m.Task.from_dict({"task_id": "t", "task_type": "x"}) == m.Task("t", "x")
    with pytest.raises(CodecError, match="'target_agent_id' needs 'target_epoch'"):
        m.PlanEntry.from_dict({"task_id": "t", "attempt": 2, "target_agent_id": "b"})


def test_encoding_drops_absent_optionals_and_writes_enum_values() -> None:
    event = m.TaskEvent(kind=m.EventKind.AGENT_STOPPED, agent_id="a", epoch=1, at=2.0)
    expected = {
        "kind": "agent_stopped",
        "agent_id": "a",
        "epoch": 1,
        "at": 2.0,
        "schema_version": 1,
    }
    assert orjson.loads(event.encode()) == expected
    assert event.to_dict() == expected


@pytest.mark.parametrize(("record_type", "record"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_to_dict_is_what_encode_writes(record_type: str, record: m.Record) -> None:
    assert record.to_dict() == orjson.loads(record.encode())


def test_a_record_that_cannot_be_written_raises_codec_error() -> None:
    with pytest.raises(CodecError, match="cannot encode task record"):
        m.Task("t", "x", payload={1, 2}).encode()


def test_records_are_frozen() -> None:
    record = SAMPLES[0][1]
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.agent_id = "other"  # type: ignore[misc]


def test_a_null_checkpoint_state_round_trips() -> None:
    record = m.Checkpoint(
        task_id="t", attempt=1, agent_id="a", epoch=1, step=0, state=None, written_at=1.0
    )
    assert b'"state":null' in record.encode()
    assert m.Checkpoint.decode(record.encode()) == record
    no_state = {k: v for k, v in record.to_dict().items() if k != "state"}
    with pytest.raises(CodecError, match="missing required field `state`"):
        m.Checkpoint.decode(orjson.dumps(no_state))


# -- nesting depth: a decoded record must be writable again ------------------------------------


def nested(depth: int) -> bytes:
    """A JSON value of ``depth`` nested arrays and objects (orjson cannot write this deep)."""
    return (
        b'{"a":[' * (depth // 2) + b"0" + b"]}" * (depth // 2)
        if depth % 2 == 0
        else (b"[" + nested(depth - 1) + b"]")
    )


def task_with_payload(depth: int) -> bytes:
    return b'{"task_id":"t","task_type":"x","schema_version":1,"payload":' + nested(depth) + b"}"


def test_a_payload_at_the_depth_limit_decodes_and_is_writable_wherever_it_is_embedded() -> None:
    task = m.Task.decode(task_with_payload(m.MAX_JSON_DEPTH).replace(b'"t"', b'"t-1"', 1))
    assert m.Task.decode(task.encode()) == task
    claimed = m.TaskEvent(
        kind=m.EventKind.CLAIMED,
        agent_id="a",
        epoch=1,
        at=1.0,
        task_id="t-1",
        attempt=1,
        task=task,
    )
    assert m.TaskEvent.decode(claimed.encode()) == claimed
    moved = dataclasses.replace(SAMPLES[7][1], task=task)
    assert m.Redispatch.decode(moved.encode()) == moved
    slot = TaskSlot(task, 1, 1, SlotStatus.OWNED)
    record = AgentRecord("a", 0, epoch=1, tasks={"t-1": slot})
    assert decode_record(encode_record(record)) == record


# 1023: the deepest payload orjson reads inside a record.
@pytest.mark.parametrize("depth", [m.MAX_JSON_DEPTH + 1, 300, 1023])
def test_a_payload_deeper_than_the_limit_is_refused_at_decode(depth: int) -> None:
    with pytest.raises(CodecError, match=f"'payload' nests deeper than {m.MAX_JSON_DEPTH} levels"):
        m.Task.decode(task_with_payload(depth))


def test_a_deep_state_is_refused_inside_a_checkpoint() -> None:
    raw = (
        b'{"task_id":"t","attempt":1,"agent_id":"a","epoch":1,"step":0,"written_at":1.0,'
        b'"schema_version":1,"state":' + nested(500) + b"}"
    )
    with pytest.raises(CodecError, match="'state' nests deeper"):
        m.Checkpoint.decode(raw)


def test_a_deep_payload_in_a_nested_task_is_refused_with_its_path() -> None:
    raw = orjson.dumps({**SAMPLES[7][1].to_dict(), "task": "TASK"}).replace(
        b'"TASK"', task_with_payload(300)
    )
    with pytest.raises(CodecError, match=r"nests deeper .* - at `\$.task`"):
        m.Redispatch.decode(raw)


FLEET = next(r for t, r in SAMPLES if t == "fleet_summary").to_dict()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"monitor_id": ""}, "Expected `str` of length >= 1 - at `$.monitor_id`"),
        ({"partitions": [0, -1]}, "Expected `int` >= 0 - at `$.partitions[1]`"),
        ({"partitions": [True]}, "Expected `int`, got `bool` - at `$.partitions[0]`"),
        ({"partitions": ...}, "missing required field `partitions`"),
        ({"agents": ...}, "missing required field `agents`"),
        (
            {"agents": [{"agent_id": "a", "epoch": 1, "capacity": 2}]},
            "missing required field `in_flight` - at `$.agents[0]`",
        ),
        (
            {"agents": [{"agent_id": "a", "epoch": 1, "capacity": 2, "in_flight": -1}]},
            "Expected `int` >= 0 - at `$.agents[0].in_flight`",
        ),
        ({"agents": ["a"]}, "Expected `object`, got `str` - at `$.agents[0]`"),
    ],
)
def test_invalid_fleet_summaries(changes: dict[str, object], reason: str) -> None:
    data = {k: v for k, v in {**FLEET, **changes}.items() if v is not ...}
    with pytest.raises(CodecError, match="invalid fleet") as info:
        m.FleetSummary.decode(orjson.dumps(data))
    assert reason in str(info.value)


def test_task_accepts_any_json_payload() -> None:
    payloads: list[Any] = [None, 1, "s", [1, {"a": None}], {"k": [True, 1.5]}]
    for payload in payloads:
        task = dataclasses.replace(TASK, payload=payload)
        assert m.Task.decode(task.encode()) == task


@pytest.mark.parametrize(
    ("raw", "refusal"),
    [
        (b"{oops", Refusal.NOT_JSON),
        (None, Refusal.NOT_JSON),
        (b"[1, 2]", Refusal.INVALID),
        (hb(epoch=-1), Refusal.INVALID),
        (hb(schema_version=...), Refusal.INVALID),
        (hb(schema_version="1"), Refusal.INVALID),
        (hb(schema_version=99), Refusal.UNSUPPORTED_VERSION),
    ],
)
def test_a_refused_record_says_why_in_a_word(raw: bytes | None, refusal: Refusal) -> None:
    with pytest.raises(CodecError) as info:
        m.Heartbeat.decode(raw)
    assert info.value.refusal is refusal


@dataclasses.dataclass
class _Summary:
    notes: tuple[str, ...]


def test_a_result_becomes_the_plain_json_a_reader_decodes() -> None:
    assert m.plain_result(None) is None
    assert m.plain_result({"n": (1, 2), "s": _Summary(("a",))}) == {
        "n": [1, 2],
        "s": {"notes": ["a"]},
    }
    completed = next(r for _, r in SAMPLES if getattr(r, "kind", None) is m.EventKind.COMPLETED)
    event = dataclasses.replace(completed, result=m.plain_result((1.5, "x")))
    assert m.TaskEvent.decode(event.encode()).result == [1.5, "x"]


def test_a_result_at_the_size_limit_is_carried_and_one_byte_more_is_refused() -> None:
    fits = "x" * (m.MAX_RESULT_BYTES - 2)  # the two quotes make the limit
    assert m.plain_result(fits) == fits
    with pytest.raises(
        CodecError, match="262,145 bytes of JSON, over the 262,144-byte limit"
    ) as info:
        m.plain_result(fits + "x")
    assert info.value.refusal is Refusal.TOO_LARGE


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (object(), "not JSON"),
        ({1: "non-string key"}, "not JSON"),
        (
            functools.reduce(lambda inner, _: [inner], range(m.MAX_JSON_DEPTH + 1), 0),
            "deeper than 240",
        ),
    ],
    ids=["object", "int key", "too deep"],
)
def test_a_result_that_is_not_json_is_refused_with_the_reason(value: Any, reason: str) -> None:
    with pytest.raises(CodecError, match=reason):
        m.plain_result(value)


def test_a_failed_outcome_says_why() -> None:
    with pytest.raises(CodecError, match="kind 'failed' needs 'error'"):
        m.TaskOutcome(
            task_id="t", kind=m.OutcomeKind.FAILED, attempt=1, agent_id="a", epoch=1, finished_at=0
        )
