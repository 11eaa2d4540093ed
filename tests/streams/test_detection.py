"""Detection rules: timeouts on the monitor's clock, ageing after a takeover, restarts, stops."""

from __future__ import annotations

import dataclasses

from agent_failover.models import DispatchReason
from agent_failover.streams.detection import (
    DeadEpoch,
    DetectionPolicy,
    Health,
    classify,
    dead_epochs,
    health_of,
    timeout_at,
)
from agent_failover.streams.state import FencedEpoch, SlotStatus
from tests.streams.factories import POLICY, live, record, slot

OWNED_SINCE = 0.0
GRACE = dataclasses.replace(POLICY, grace_period=2.0)  # an extra margin after each takeover


def test_classify_thresholds() -> None:
    assert classify(0.5, POLICY) is Health.HEALTHY
    assert classify(1.0, POLICY) is Health.DEGRADED
    assert classify(3.0, POLICY) is Health.FAILED


def test_healthy_agent_is_not_dead() -> None:
    assert dead_epochs(record(), live(last_seen=99.0), 100.0, OWNED_SINCE, POLICY) == []


def test_heartbeat_timeout_fails_the_epoch() -> None:
    dead = dead_epochs(record(), live(last_seen=96.0), 100.0, OWNED_SINCE, POLICY)
    assert dead == [DeadEpoch("a", 1, DispatchReason.HEARTBEAT_TIMEOUT, 4.0)]


def test_degraded_is_reported_but_not_dead() -> None:
    rec, hb = record(), live(last_seen=98.0)
    assert health_of(rec, hb, 100.0, OWNED_SINCE, POLICY) is Health.DEGRADED
    assert dead_epochs(rec, hb, 100.0, OWNED_SINCE, POLICY) == []


def test_an_epoch_never_heard_here_is_silent_from_the_takeover_not_from_before() -> None:
    # The worker owns the partition since 99 (its heartbeat reader read it to its end then): a
    # live agent is heard within its interval from there, so a silent one fails at 99 + timeout.
    rec = record(slots=(slot(),))
    assert dead_epochs(rec, None, 101.9, 99.0, POLICY) == []
    assert health_of(rec, None, 99.5, 99.0, POLICY) is Health.UNKNOWN
    assert health_of(rec, None, 101.0, 99.0, POLICY) is Health.DEGRADED  # overdue now
    dead = dead_epochs(rec, None, 102.0, 99.0, POLICY)
    assert dead == [DeadEpoch("a", 1, DispatchReason.HEARTBEAT_TIMEOUT, None)]
    assert timeout_at(rec, None, 99.0, POLICY) == 102.0


def test_a_grace_period_adds_a_margin_to_every_takeover() -> None:
    rec = record(slots=(slot(),))
    assert dead_epochs(rec, None, 103.9, 99.0, GRACE) == []
    assert dead_epochs(rec, None, 104.0, 99.0, GRACE)
    # A heartbeat heard after the takeover ages as usual once the margin is over.
    assert dead_epochs(rec, live(last_seen=101.5), 104.4, 99.0, GRACE) == []
    assert dead_epochs(rec, live(last_seen=101.5), 104.5, 99.0, GRACE)


def test_after_a_stall_a_heard_epoch_is_silent_from_the_stalls_end() -> None:
    # The worker stalled; liveness restarted at 99 (owned since moves there): the heartbeat
    # heard at 90 may have a successor still unread, so silence counts from 99.
    hb = live(last_seen=90.0)
    assert dead_epochs(record(), hb, 101.9, 99.0, POLICY) == []
    assert health_of(record(), hb, 99.5, 99.0, POLICY) is Health.HEALTHY
    dead = dead_epochs(record(), hb, 102.0, 99.0, POLICY)
    assert dead == [DeadEpoch("a", 1, DispatchReason.HEARTBEAT_TIMEOUT, 12.0)]  # the true age
    assert timeout_at(record(), hb, 99.0, POLICY) == 102.0


def test_known_epoch_without_heartbeat_fails_a_timeout_after_the_takeover() -> None:
    rec = record(slots=(slot(),))
    assert dead_epochs(rec, None, 2.9, OWNED_SINCE, POLICY) == []
    assert health_of(rec, None, 0.5, OWNED_SINCE, POLICY) is Health.UNKNOWN
    dead = dead_epochs(rec, None, 3.0, OWNED_SINCE, POLICY)
    assert dead == [DeadEpoch("a", 1, DispatchReason.HEARTBEAT_TIMEOUT, None)]


def test_a_new_epoch_gets_a_full_timeout_for_its_first_heartbeat() -> None:
    # Long after takeover, agent_started (epoch 1) is processed at 100 before any heartbeat of
    # that epoch arrives: it is not dead until 100 + timeout.
    rec = record(slots=(slot(),))
    known = {1: 100.0}
    assert dead_epochs(rec, None, 102.9, OWNED_SINCE, POLICY, known) == []
    assert health_of(rec, None, 100.5, OWNED_SINCE, POLICY, known) is Health.UNKNOWN
    dead = dead_epochs(rec, None, 103.0, OWNED_SINCE, POLICY, known)
    assert dead == [DeadEpoch("a", 1, DispatchReason.HEARTBEAT_TIMEOUT, None)]
    # Without knowing when the epoch appeared it would have been failed at once.
    assert dead_epochs(rec, None, 100.0, OWNED_SINCE, POLICY)


def test_new_epoch_fails_the_old_one_at_once_even_in_grace() -> None:
    rec = record(epoch=2, slots=(slot(epoch=1),))
    dead = dead_epochs(rec, live(epoch=2, last_seen=100.0), 100.0, 99.9, GRACE)
    assert dead == [DeadEpoch("a", 1, DispatchReason.RESTARTED, None)]


def test_heartbeat_from_newer_epoch_than_the_table_fails_the_old_epoch() -> None:
    dead = dead_epochs(record(epoch=1), live(epoch=2), 100.0, OWNED_SINCE, POLICY)
    assert [d.epoch for d in dead] == [1]
    assert dead[0].reason is DispatchReason.RESTARTED


def test_superseded_epoch_without_tasks_is_fenced() -> None:
    rec = dataclasses.replace(record(epoch=2), superseded=(1,))
    dead = dead_epochs(rec, live(epoch=2), 100.0, OWNED_SINCE, POLICY)
    assert dead == [DeadEpoch("a", 1, DispatchReason.RESTARTED, None)]


def test_stopped_epoch_holding_tasks_fails_with_reason_stopped() -> None:
    rec = dataclasses.replace(record(slots=(slot(),)), stopped=(1,))
    assert dead_epochs(rec, None, 0.5, OWNED_SINCE, POLICY) == [
        DeadEpoch("a", 1, DispatchReason.STOPPED, None)
    ]
    # Queued (released) tasks are already moving: a clean stop fences nothing, even much later.
    clean = dataclasses.replace(rec, tasks={"t-1": slot(status=SlotStatus.QUEUED)})
    assert dead_epochs(clean, None, 1000.0, OWNED_SINCE, POLICY) == []
    assert health_of(clean, None, 1000.0, OWNED_SINCE, POLICY) is Health.STOPPED


def test_fenced_epoch_is_never_returned_again() -> None:
    rec = dataclasses.replace(record(), fenced=(FencedEpoch(1, "d", 1.0),))
    assert dead_epochs(rec, live(last_seen=0.0), 100.0, OWNED_SINCE, POLICY) == []


def test_agent_known_only_from_heartbeats_is_detected() -> None:
    dead = dead_epochs(None, live(last_seen=90.0), 100.0, OWNED_SINCE, POLICY)
    assert [(d.agent_id, d.epoch) for d in dead] == [("a", 1)]
    assert dead_epochs(None, None, 100.0, OWNED_SINCE, POLICY) == []


# -- timeout_at: when dead_epochs would start failing the newest epoch, if nothing changes --------

TIMEOUT_CASES = [
    ("heard", record(), live(last_seen=100.0), 0.0, None),
    ("heard, in grace", record(), live(last_seen=100.0), 99.0, None),
    ("heard before the stall's end", record(), live(last_seen=100.0), 101.5, None),
    ("table only", record(), None, 0.0, None),
    ("table only, known late", record(), None, 0.0, {1: 50.0}),
    ("newer epoch in the table", record(epoch=2), live(epoch=1, last_seen=100.0), 0.0, {2: 80.0}),
    ("heartbeat only", None, live(last_seen=100.0), 0.0, None),
]


def _first_timeout(
    case: tuple[object, ...], policy: DetectionPolicy, step: float = 0.01
) -> float | None:
    _, rec, lv, since, known = case
    for n in range(0, 40000):
        now = n * step
        dead = dead_epochs(rec, lv, now, since, policy, known)  # type: ignore[arg-type]
        if any(d.reason is DispatchReason.HEARTBEAT_TIMEOUT for d in dead):
            return now
    return None


def test_timeout_at_is_when_dead_epochs_first_times_out() -> None:
    for case in TIMEOUT_CASES:
        name, rec, lv, since, known = case
        for policy in (POLICY, GRACE):
            at = timeout_at(rec, lv, since, policy, known)  # type: ignore[arg-type]
            first = _first_timeout(case, policy)
            assert at is not None and first is not None, name
            assert first - 0.011 < at <= first, (name, at, first)


def test_timeout_at_is_none_for_a_closed_newest_epoch() -> None:
    fenced = dataclasses.replace(record(), fenced=(FencedEpoch(1, "d", 0.0),))
    stopped = dataclasses.replace(record(), stopped=(1,))
    assert timeout_at(fenced, live(), 0.0, POLICY) is None
    assert timeout_at(stopped, None, 0.0, POLICY) is None
    assert timeout_at(None, None, 0.0, POLICY) is None


def test_a_record_known_only_from_a_redispatch_is_judged_not_crashed() -> None:
    # A re-dispatch reached this worker before the target's agent_started: no record epoch, no
    # heartbeat yet. Detection treats the slot's epoch as the agent's, with the usual timings.
    rec = dataclasses.replace(record(slots=(slot(),)), epoch=None)
    assert dead_epochs(rec, None, 2.9, OWNED_SINCE, POLICY) == []
    dead = dead_epochs(rec, None, 3.0, OWNED_SINCE, POLICY)
    assert [(d.agent_id, d.epoch) for d in dead] == [("a", 1)]
    assert (
        dead_epochs(dataclasses.replace(record(), epoch=None), None, 9.0, OWNED_SINCE, POLICY) == []
    )


def test_degraded_waits_for_a_missed_heartbeat_of_the_agents_own_interval() -> None:
    # degraded_after is 1.0 (timeout 3): an agent beating every 1 s must not flap to degraded
    # (and out of the failover targets) between two punctual heartbeats.
    assert classify(1.2, POLICY, interval=1.0) is Health.HEALTHY
    assert classify(1.5, POLICY, interval=1.0) is Health.DEGRADED
    assert classify(1.2, POLICY) is Health.DEGRADED  # interval unknown: the setting alone
    # An interval beyond the timeout (a misconfiguration) cannot push failure past the timeout.
    assert classify(3.0, POLICY, interval=10.0) is Health.FAILED


def test_an_interval_the_timeout_cannot_satisfy_is_refused_at_once_naming_both_settings() -> None:
    hb = dataclasses.replace(live(last_seen=99.9), interval_s=2.0)  # more than half of 3 s
    (dead,) = dead_epochs(record(), hb, 100.0, OWNED_SINCE, POLICY)
    assert dead.reason is DispatchReason.MISCONFIGURED
    assert dead.detail is not None
    assert "AGENT_FAILOVER_HEARTBEAT_INTERVAL" in dead.detail
    assert "AGENT_FAILOVER_HEARTBEAT_TIMEOUT" in dead.detail


def test_an_agent_assuming_a_longer_timeout_than_the_monitor_is_refused() -> None:
    hb = dataclasses.replace(live(last_seen=99.9), interval_s=0.5, timeout_s=10.0)
    (dead,) = dead_epochs(record(), hb, 100.0, OWNED_SINCE, POLICY)
    assert dead.reason is DispatchReason.MISCONFIGURED
    assert dead.detail is not None and "10 s" in dead.detail
    # The same timeout, or a shorter one (the agent is only more careful), is fine.
    for timeout in (3.0, 2.0, None):
        ok = dataclasses.replace(hb, timeout_s=timeout)
        assert dead_epochs(record(), ok, 100.0, OWNED_SINCE, POLICY) == []
