"""Codecs: every record round-trips; bad input raises CodecError with a reason, never crashes."""

from __future__ import annotations

import orjson
import pytest

from agent_failover import models as m
from agent_failover.errors import AgentFailoverError, CodecError
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
        (hb(agent_id=...), "missing field 'agent_id'"),
        (hb(agent_id=""), "must not be empty"),
        (hb(epoch="7"), "field 'epoch' must be int"),
        (hb(epoch=True), "field 'epoch' must be int"),
        (hb(seq=-1), "'seq' must be >= 0"),
        (hb(interval_s=0), "'interval_s' must be > 0"),
        (hb(pool="spare"), "expected one of: active, standby"),
        (hb(in_flight=[1]), "list of task ids"),
        (hb(schema_version=2), "schema_version 2 is not supported"),
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


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    record = m.Heartbeat.decode(hb(new_field={"x": 1}))
    assert record == SAMPLES[0][1]


def test_integer_times_are_accepted_as_floats() -> None:
    assert m.Heartbeat.decode(hb(sent_at=10)).sent_at == 10.0


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (
            {"kind": "claimed", "agent_id": "a", "epoch": 1, "at": 1.0},
            "needs 'task_id' and 'attempt'",
        ),
        (
            {
                "kind": "claimed",
                "agent_id": "a",
                "epoch": 1,
                "at": 1.0,
                "task_id": "t",
                "attempt": 1,
            },
            "needs 'task'",
        ),
        (
            {
                "kind": "checkpointed",
                "agent_id": "a",
                "epoch": 1,
                "at": 1.0,
                "task_id": "t",
                "attempt": 1,
            },
            "needs 'checkpoint'",
        ),
        (
            {
                "kind": "completed",
                "agent_id": "a",
                "epoch": 1,
                "at": 1.0,
                "task_id": "t",
                "attempt": 0,
            },
            "'attempt' must be >= 1",
        ),
        ({"kind": "exploded", "agent_id": "a", "epoch": 1, "at": 1.0}, "expected one of"),
    ],
)
def test_invalid_task_events(event: dict[str, object], reason: str) -> None:
    with pytest.raises(CodecError, match=reason):
        m.TaskEvent.decode(orjson.dumps({**event, "schema_version": 1}))


def test_nested_errors_name_the_nested_record() -> None:
    bad = m.Redispatch(
        task=TASK,
        attempt=2,
        target_agent_id="b",
        target_epoch=1,
        reason=m.DispatchReason.RELEASED,
        from_agent_id="a",
        from_epoch=1,
        decision_id="d",
        dispatched_at=1.0,
    ).to_dict()
    bad["checkpoint"] = {"partition": 0, "offset": -1, "step": 0}
    with pytest.raises(
        CodecError, match="invalid checkpoint_ref record: field 'offset' must be >= 0"
    ):
        m.Redispatch.decode(orjson.dumps(bad))


def test_redispatch_attempt_must_be_at_least_two() -> None:
    data = SAMPLES[7][1].to_dict()
    data["attempt"] = 1
    with pytest.raises(CodecError, match=">= 2"):
        m.Redispatch.decode(orjson.dumps(data))


def test_plan_entry_target_fields_come_together() -> None:
    with pytest.raises(CodecError, match="come together"):
        m.PlanEntry.from_dict({"task_id": "t", "attempt": 2, "target_agent_id": "b"})


def test_encoding_drops_absent_optionals_and_writes_enum_values() -> None:
    event = m.TaskEvent(kind=m.EventKind.AGENT_STOPPED, agent_id="a", epoch=1, at=2.0)
    assert orjson.loads(event.encode()) == {
        "kind": "agent_stopped",
        "agent_id": "a",
        "epoch": 1,
        "at": 2.0,
        "schema_version": 1,
    }


def test_records_are_frozen() -> None:
    record = SAMPLES[0][1]
    with pytest.raises(AttributeError):
        record.agent_id = "other"  # type: ignore[misc]


def test_a_null_checkpoint_state_round_trips() -> None:
    record = m.Checkpoint(
        task_id="t", attempt=1, agent_id="a", epoch=1, step=0, state=None, written_at=1.0
    )
    assert m.Checkpoint.decode(record.encode()) == record


FLEET = next(r for t, r in SAMPLES if t == "fleet_summary").to_dict()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"monitor_id": ""}, "must not be empty"),
        ({"partitions": [0, -1]}, "list of partition numbers"),
        ({"partitions": [True]}, "list of partition numbers"),
        ({"partitions": ...}, "missing field 'partitions'"),
        ({"agents": ...}, "missing field 'agents'"),
        ({"agents": [{"agent_id": "a", "epoch": 1, "capacity": 2}]}, "missing field 'in_flight'"),
        (
            {"agents": [{"agent_id": "a", "epoch": 1, "capacity": 2, "in_flight": -1}]},
            "'in_flight' must be >= 0",
        ),
        ({"agents": ["a"]}, "agents[0] must be an object"),
    ],
)
def test_invalid_fleet_summaries(changes: dict[str, object], reason: str) -> None:
    data = {k: v for k, v in {**FLEET, **changes}.items() if v is not ...}
    with pytest.raises(CodecError, match="invalid fleet") as info:
        m.FleetSummary.decode(orjson.dumps(data))
    assert reason in str(info.value)
