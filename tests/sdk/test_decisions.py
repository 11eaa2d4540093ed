"""Pure decisions of the SDK: redispatch filtering, control interpretation, progress gate, beats."""

from __future__ import annotations

from agent_failover.config import CheckpointPolicy
from agent_failover.models import (
    Control,
    ControlKind,
    DispatchReason,
    PlanEntry,
    Pool,
    Redispatch,
    Task,
)
from agent_failover.sdk.checkpoint import ProgressGate
from agent_failover.sdk.heartbeat import HeartbeatBuilder, HeartbeatState
from agent_failover.sdk.intake import ControlActions, RedispatchFilter, interpret_control


def redispatch(task_id: str, attempt: int, agent: str = "a", epoch: int = 5) -> Redispatch:
    return Redispatch(
        task=Task(task_id=task_id, task_type="t"),
        attempt=attempt,
        target_agent_id=agent,
        target_epoch=epoch,
        reason=DispatchReason.HEARTBEAT_TIMEOUT,
        from_agent_id="dead",
        from_epoch=1,
        decision_id="d1",
        dispatched_at=0.0,
    )


def control(kind: ControlKind, epoch: int = 5, plan: tuple[PlanEntry, ...] = ()) -> Control:
    return Control(kind=kind, agent_id="a", epoch=epoch, decision_id="d", issued_at=0.0, plan=plan)


def test_redispatch_filter_takes_own_epoch_once() -> None:
    f = RedispatchFilter("a", 5)
    assert f.accept(redispatch("t1", 2))
    assert not f.accept(redispatch("t1", 2))  # a monitor restart repeated it
    assert f.accept(redispatch("t1", 3))
    assert not f.accept(redispatch("t2", 2, epoch=4))  # an older incarnation's
    assert not f.accept(redispatch("t2", 2, agent="b"))


def test_redispatch_filter_is_bounded() -> None:
    f = RedispatchFilter("a", 5, max_seen=2)
    for t in ("t1", "t2", "t3"):
        assert f.accept(redispatch(t, 2))
    assert f.accept(redispatch("t1", 2))  # forgotten, oldest first
    assert not f.accept(redispatch("t3", 2))


def test_fence_for_own_epoch_only() -> None:
    assert interpret_control(control(ControlKind.FENCE), "a", 5, {}).fence
    assert interpret_control(control(ControlKind.FENCE, epoch=4), "a", 5, {}) == ControlActions()


def test_plan_moving_a_held_task_to_a_newer_attempt() -> None:
    plan = (
        PlanEntry(task_id="t1", attempt=3, target_agent_id="b", target_epoch=9),
        PlanEntry(task_id="t2", attempt=2),  # not a newer attempt than ours
        PlanEntry(task_id="t9", attempt=2),  # not ours
    )
    actions = interpret_control(
        control(ControlKind.DISPATCH, epoch=4, plan=plan), "a", 5, {"t1": 2, "t2": 2}
    )
    assert actions.moved == (("t1", 3),)
    assert not actions.fence


def test_other_agents_control_is_ignored() -> None:
    rec = Control(kind=ControlKind.FENCE, agent_id="b", epoch=5, decision_id="d", issued_at=0.0)
    assert interpret_control(rec, "a", 5, {}) == ControlActions()


def test_drain_and_promote() -> None:
    assert interpret_control(control(ControlKind.DRAIN), "a", 5, {}).drain
    assert interpret_control(control(ControlKind.PROMOTE), "a", 5, {}).promote


def test_progress_gate_modes() -> None:
    now = [0.0]
    every = ProgressGate(CheckpointPolicy.every_step(), lambda: now[0])
    never = ProgressGate(CheckpointPolicy.on_demand(), lambda: now[0])
    timed = ProgressGate(CheckpointPolicy.every(2.0), lambda: now[0])
    assert every.should_write() and not never.should_write() and not timed.should_write()
    now[0] = 2.0
    assert timed.should_write()
    timed.written()
    assert not timed.should_write()
    now[0] = 4.5
    assert timed.should_write() and not never.should_write()


def test_heartbeat_builder_numbers_beats_from_zero() -> None:
    builder = HeartbeatBuilder("a", 5, 1.0, 2)
    state = HeartbeatState(lambda: ("t1",), lambda: Pool.STANDBY, lambda: True)
    first = builder.build(state, 10.0)
    assert builder.build(state, 11.0).seq == 0  # not sent: the number is reused
    builder.sent()
    second = builder.build(state, 12.0)
    assert (first.seq, second.seq) == (0, 1)
    assert (first.in_flight, first.pool, first.draining, first.capacity) == (
        ("t1",),
        Pool.STANDBY,
        True,
        2,
    )
