"""Planning (standby first, least loaded, none), new work (active agents only, least loaded),
load (a completion frees its slot at once) and applying decisions (first decision wins)."""

from __future__ import annotations

import dataclasses

from agent_failover.models import ControlKind, DispatchReason, PlanEntry, Pool
from agent_failover.streams.dispatch import (
    Candidate,
    apply_control,
    candidates,
    choose_new,
    free_slots,
    load_of,
    plan_moves,
)
from agent_failover.streams.state import FencedEpoch, SlotStatus
from tests.streams.factories import POLICY, control, live, record, ref, slot

FENCE = ControlKind.FENCE
DISPATCH = ControlKind.DISPATCH


def cand(agent: str, *, load: int = 0, cap: int = 2, pool: Pool = Pool.ACTIVE) -> Candidate:
    return Candidate(agent, 7, pool, cap, load)


def test_plan_prefers_a_ready_standby() -> None:
    plan = plan_moves([slot()], [cand("b"), cand("s", load=1, pool=Pool.STANDBY)])
    assert plan == (PlanEntry("t-1", 2, "s", 7, None),)


def test_plan_picks_least_loaded_and_counts_what_it_planned() -> None:
    slots = [slot("t-1", checkpoint=ref()), slot("t-2"), slot("t-3")]
    plan = plan_moves(slots, [cand("b", load=1), cand("c", load=0)])
    assert [(e.task_id, e.attempt, e.target_agent_id) for e in plan] == [
        ("t-1", 2, "c"),
        ("t-2", 2, "b"),  # c and b both half full: tie broken by agent id
        ("t-3", 2, "c"),
    ]
    assert plan[0].checkpoint == ref()


def test_plan_without_free_capacity_leaves_the_task_queued() -> None:
    plan = plan_moves([slot()], [cand("b", load=2)], reserved={("c", 7): 1})
    assert plan == (PlanEntry("t-1", 2),)
    assert plan_moves([slot()], []) == (PlanEntry("t-1", 2),)
    # Reservations count as load: a re-dispatch not yet visible in heartbeats.
    assert plan_moves([slot()], [cand("c", load=1)], reserved={("c", 7): 1}) == (
        PlanEntry("t-1", 2),
    )


def test_plan_excludes_the_source_epoch() -> None:
    plan = plan_moves([slot()], [cand("a")], exclude={("a", 7)})
    assert plan[0].target_agent_id is None


def test_candidates_skip_unhealthy_draining_fenced_superseded_and_misconfigured() -> None:
    lives = [
        live("ok", last_seen=99.9),
        live("late", last_seen=98.0),  # degraded
        live("drain", draining=True),
        live("fenced"),
        live("old", epoch=1),
        dataclasses.replace(live("slow"), interval_s=2.0),  # refused: misconfigured
        dataclasses.replace(live("long"), timeout_s=9.0),  # refused: a longer lease
    ]
    records = {
        "fenced": dataclasses.replace(record("fenced"), fenced=(FencedEpoch(1, "d", 0.0),)),
        "old": record("old", epoch=2),
        "ok": record("ok", slots=(slot("x"), slot("y"), slot("z", status=SlotStatus.QUEUED))),
    }
    got = candidates(lives, records, 100.0, POLICY)
    assert got == [Candidate("ok", 1, Pool.ACTIVE, 2, 2)]  # two held in the table, one queued


def test_load_is_held_tasks_and_heartbeat_tasks_minus_those_finished_since() -> None:
    rec = record(slots=(slot("x"), slot("moving", status=SlotStatus.QUEUED)))
    # The heartbeat lags: it still lists "done" (completed since) and not yet "x".
    rec = dataclasses.replace(rec, done=(("done", 1),))
    assert load_of(rec, live(in_flight=("done", "queued-here"))) == 2  # x, queued-here
    assert load_of(None, live(in_flight=("a", "b"))) == 2
    assert load_of(record(), live()) == 0
    # A slot of another epoch of the same agent id is not this epoch's load.
    assert load_of(record(slots=(slot(epoch=2),)), live(epoch=1)) == 0


def test_new_work_goes_to_the_least_loaded_active_agent_never_a_standby() -> None:
    pool = [
        cand("s", pool=Pool.STANDBY),
        cand("b", load=1),
        cand("c", load=1, cap=4),
        cand("full", load=2),
    ]
    assert choose_new(pool) == pool[2]  # a quarter full beats half full; the standby is idle
    assert choose_new(pool, {("c", 7): 3}) == pool[1]
    assert choose_new(pool, {("c", 7): 3, ("b", 7): 1}) is None  # only the standby is free
    assert choose_new([cand("y", load=1), cand("x", load=1)]) == cand("x", load=1)  # tie: id
    assert free_slots(pool) == 1 + 3
    assert free_slots(pool, {("c", 7): 5}) == 1


def test_fence_moves_tasks_with_attempt_plus_one_and_checkpoint() -> None:
    rec = record(slots=(slot("t-1", checkpoint=ref()), slot("t-2")))
    plan = (PlanEntry("t-1", 2, "b", 9, ref()), PlanEntry("t-2", 2))
    out = apply_control(rec, control(FENCE, plan=plan), 0, 60.0)
    assert not out.duplicate
    (rd,) = out.redispatches
    assert (rd.task_id, rd.attempt, rd.target_agent_id, rd.target_epoch) == ("t-1", 2, "b", 9)
    assert rd.checkpoint == ref() and rd.from_epoch == 1 and rd.dispatched_at == 50.0
    assert rd.reason is DispatchReason.HEARTBEAT_TIMEOUT
    assert out.record.is_fenced(1)
    assert "t-1" not in out.record.tasks
    assert out.record.tasks["t-2"].status is SlotStatus.QUEUED  # no target: waits
    assert out.failover is not None
    assert out.failover.queued == ("t-2",) and out.failover.moved[0].resume_step == 2


def test_a_fence_passes_on_how_long_the_epoch_was_silent() -> None:
    rec = record(slots=(slot("t-1", checkpoint=ref()),))
    ctl = dataclasses.replace(
        control(FENCE, plan=(PlanEntry("t-1", 2, "b", 9, ref()),)), last_heartbeat_age_s=3.4
    )
    out = apply_control(rec, ctl, 0, 60.0)
    assert out.redispatches[0].last_heartbeat_age_s == 3.4
    assert out.record.fence_of(1) == FencedEpoch(1, "d-1", 50.0, 3.4)


def test_first_fence_wins() -> None:
    rec = record(slots=(slot(),))
    first = apply_control(rec, control(FENCE, plan=(PlanEntry("t-1", 2, "b", 9),)), 0, 60.0)
    again = apply_control(
        first.record,
        control(FENCE, plan=(PlanEntry("t-1", 2, "c", 9),), decision_id="d-2"),
        0,
        61.0,
    )
    assert again.duplicate and again.redispatches == () and again.record == first.record


def test_reapplying_the_same_decision_after_a_crash_sends_identical_records() -> None:
    # The table write did not happen (crash after the sends): the decision is applied again.
    rec = record(slots=(slot(checkpoint=ref()),))
    ctl = control(FENCE, plan=(PlanEntry("t-1", 2, "b", 9, ref()),))
    assert (
        apply_control(rec, ctl, 0, 60.0).redispatches
        == apply_control(rec, ctl, 0, 99.0).redispatches
    )


def test_fence_queues_tasks_the_plan_did_not_know() -> None:
    rec = record(slots=(slot("t-1"), slot("late")))
    out = apply_control(rec, control(FENCE, plan=(PlanEntry("t-1", 2, "b", 9),)), 0, 60.0)
    assert out.record.tasks["late"].status is SlotStatus.QUEUED


def test_new_work_held_by_a_fenced_epoch_moves_as_attempt_two_from_the_start() -> None:
    rec = record(slots=(slot(),))  # attempt 1, dispatched as new work, never checkpointed
    out = apply_control(rec, control(FENCE, plan=(PlanEntry("t-1", 2, "b", 9),)), 0, 60.0)
    (rd,) = out.redispatches
    assert (rd.attempt, rd.checkpoint, rd.from_agent_id, rd.source) == (2, None, "a", None)


def test_first_plan_entry_per_task_attempt_wins() -> None:
    rec = record(slots=(slot(status=SlotStatus.QUEUED, reason=DispatchReason.RELEASED),))
    reason = DispatchReason.RELEASED
    first = apply_control(
        rec, control(DISPATCH, plan=(PlanEntry("t-1", 2, "b", 9),), reason=reason), 0, 1.0
    )
    assert [r.target_agent_id for r in first.redispatches] == ["b"]
    assert first.record.is_decided("t-1", 2)
    second = apply_control(
        first.record,
        control(DISPATCH, plan=(PlanEntry("t-1", 2, "c", 9),), reason=reason, decision_id="x"),
        0,
        2.0,
    )
    assert second.duplicate and second.redispatches == ()


def test_dispatch_ignores_tasks_that_are_not_queued() -> None:
    rec = record(slots=(slot(),))  # owned by a live epoch: not ours to move
    out = apply_control(rec, control(DISPATCH, plan=(PlanEntry("t-1", 2, "b", 9),)), 0, 1.0)
    assert out.duplicate and out.redispatches == ()


def test_fence_for_an_agent_known_only_from_heartbeats_creates_its_record() -> None:
    out = apply_control(None, control(FENCE, agent="z", epoch=4), 3, 1.0)
    assert out.record.agent_id == "z" and out.record.partition == 3 and out.record.is_fenced(4)


def test_drain_and_promote_change_nothing() -> None:
    rec = record()
    assert apply_control(rec, control(ControlKind.DRAIN), 0, 1.0).duplicate
