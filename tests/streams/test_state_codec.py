"""The agents table codec: one definition (the dataclasses), its version checked on read."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from agent_failover.errors import CodecError
from agent_failover.models import DispatchReason, Pool
from agent_failover.streams.state import (
    STATE_VERSION,
    AgentRecord,
    FencedEpoch,
    SlotStatus,
    decode_record,
    encode_record,
)
from tests.streams.factories import record, ref, slot


def full_record() -> AgentRecord:
    return dataclasses.replace(
        record(
            epoch=4,
            slots=(
                slot("t-1", checkpoint=ref(), progress_at=1.25),
                slot("t-2", status=SlotStatus.QUEUED, reason=DispatchReason.RELEASED),
            ),
        ),
        pool=Pool.STANDBY,
        capacity=3,
        stopped=(2,),
        superseded=(3,),
        fenced=(FencedEpoch(1, "d", 1.5, 3.25), FencedEpoch(2, "e", 2.5)),
        decided=(("t-0", 2),),
        done=(("t-x", 1),),
    )


def test_a_record_round_trips_with_its_version() -> None:
    rec = full_record()
    raw = encode_record(rec)
    assert orjson.loads(raw)["v"] == STATE_VERSION == 3
    assert decode_record(raw) == rec


def test_a_record_without_the_progress_and_silence_times_still_reads() -> None:
    raw = orjson.loads(encode_record(full_record()))
    del raw["agent"]["tasks"]["t-1"]["progress_at"]
    del raw["agent"]["fenced"][0]["last_heartbeat_age_s"]
    old = decode_record(orjson.dumps(raw))
    assert old.tasks["t-1"].progress_at is None and old.fenced[0].last_heartbeat_age_s is None
    # A monitor without these fields ignores them: no new version, workers upgrade one by one.
    assert orjson.loads(encode_record(old))["v"] == STATE_VERSION


def version_1(**slot: object) -> dict[str, object]:
    """A record as version 1 wrote it, holding task ``t-1`` (``slot``: changes to its slot)."""
    return {
        "v": 1,
        "agent_id": "a",
        "partition": 0,
        "epoch": 4,
        "pool": "active",
        "capacity": 1,
        "stopped": [2],
        "superseded": [],
        "fenced": [[1, "d", 1.5]],
        "tasks": [
            {
                "task": {"task_id": "t-1", "task_type": "x", "schema_version": 1},
                "attempt": 1,
                "epoch": 4,
                "status": "owned",
                "checkpoint": {"partition": 0, "offset": 3, "step": 1},
                "source": None,
                "reason": None,
                **slot,
            }
        ],
        "decided": [["t-0", 2]],
        "done": [],
    }


def test_a_version_1_record_is_still_read() -> None:
    rec = decode_record(orjson.dumps(version_1()))
    assert rec.fenced == (FencedEpoch(1, "d", 1.5),)
    assert list(rec.tasks) == ["t-1"] and rec.tasks["t-1"].checkpoint is not None
    assert rec.decided == (("t-0", 2),) and rec.stopped == (2,)
    assert decode_record(encode_record(rec)) == rec


def test_a_version_2_record_gives_its_checkpoints_the_slots_task_attempt_and_epoch() -> None:
    v3 = orjson.loads(encode_record(full_record()))
    for slot_ in v3["agent"]["tasks"].values():
        if slot_.get("checkpoint"):
            for name in ("task_id", "attempt", "epoch"):
                del slot_["checkpoint"][name]
    rec = decode_record(orjson.dumps({"v": 2, "agent": v3["agent"]}))
    held = rec.tasks["t-1"]
    assert held.checkpoint is not None
    assert (held.checkpoint.task_id, held.checkpoint.attempt, held.checkpoint.epoch) == (
        "t-1",
        held.attempt,
        held.epoch,
    )
    assert dataclasses.replace(rec, tasks=full_record().tasks) == full_record()


def _unconfirmed(slot_: dict[str, object]) -> None:
    """Make a table slot an unconfirmed claim of the agents' former consumer group."""
    slot_.update(status="unconfirmed", source={"topic": "af.tasks", "partition": 1, "offset": 9})


def test_an_unconfirmed_claim_of_the_consumer_group_days_is_read_as_held() -> None:
    # Nobody reads the agents' old group any more: the claimed task is the agent's, so it moves
    # if the agent dies instead of being lost.
    old = orjson.loads(encode_record(full_record()))
    _unconfirmed(old["agent"]["tasks"]["t-1"])
    rec = decode_record(orjson.dumps(old))
    assert rec.tasks["t-1"].status is SlotStatus.OWNED
    assert rec == full_record()


def test_an_unconfirmed_claim_in_a_version_2_record_is_held_with_the_slots_checkpoint() -> None:
    # Both conversions apply: the claim is held, its checkpoint reference named after the slot.
    v3 = orjson.loads(encode_record(full_record()))
    tasks = v3["agent"]["tasks"]
    for name in ("task_id", "attempt", "epoch"):
        del tasks["t-1"]["checkpoint"][name]
    _unconfirmed(tasks["t-1"])
    rec = decode_record(orjson.dumps({"v": 2, "agent": v3["agent"]}))
    assert rec == full_record()


def test_an_unconfirmed_claim_in_a_version_1_record_is_held() -> None:
    v1 = version_1(status="unconfirmed", source={"topic": "af.tasks", "partition": 1, "offset": 9})
    held = decode_record(orjson.dumps(v1)).tasks["t-1"]
    assert held.status is SlotStatus.OWNED
    assert held.checkpoint is not None
    assert (held.checkpoint.task_id, held.checkpoint.attempt, held.checkpoint.epoch) == (
        "t-1",
        1,
        4,
    )


@pytest.mark.parametrize("version", [4, 0, "2", True, None])
def test_an_unknown_version_is_refused_naming_it(version: object) -> None:
    raw = orjson.dumps({"v": version, "agent": orjson.loads(encode_record(full_record()))["agent"]})
    with pytest.raises(CodecError, match=f"version {version!r} is not supported") as info:
        decode_record(raw)
    assert info.value.record_type == "agent_record"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{", "not JSON"),
        (b"[2]", "version None is not supported"),
        (b'{"v": 2}', "malformed version 2 record"),
        (b'{"v": 1, "fenced": [[1, 2]]}', "malformed version 1 record"),
        (b'{"v": 2, "agent": {"agent_id": "a"}}', "missing required field `partition`"),
        (
            b'{"v": 2, "agent": {"agent_id": "a", "partition": 0, "tasks": {"t": {}}}}',
            "missing required field `task` - at `$.tasks[...]`",
        ),
    ],
)
def test_a_malformed_record_raises_codec_error(raw: bytes, reason: str) -> None:
    with pytest.raises(CodecError) as info:
        decode_record(raw)
    assert reason in str(info.value)
