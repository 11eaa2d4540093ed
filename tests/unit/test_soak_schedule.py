"""The soak's seeded schedule: the same seed gives the same run plan (no broker)."""

from __future__ import annotations

import dataclasses

import pytest

from agent_failover.dev.soak.__main__ import parser
from agent_failover.dev.soak.schedule import PROFILES, FaultKind, Profile, build_schedule


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_the_same_seed_gives_the_same_schedule(name: str) -> None:
    profile = PROFILES[name]
    assert build_schedule(11, profile) == build_schedule(11, profile)
    assert build_schedule(11, profile) != build_schedule(12, profile)


def test_the_quick_profile_injects_each_kind_once_and_the_full_one_each_at_least_once() -> None:
    for seed in range(20):
        quick = build_schedule(seed, PROFILES["quick"])
        assert sorted(f.kind for f in quick.faults) == sorted(FaultKind)
        full = build_schedule(seed, PROFILES["full"])
        assert {f.kind for f in full.faults} == set(FaultKind)
        assert len(full.faults) == PROFILES["full"].faults


@pytest.mark.parametrize("seed", range(10))
def test_faults_name_valid_targets_in_time_order(seed: int) -> None:
    profile = PROFILES["full"]
    schedule = build_schedule(seed, profile)
    times = [f.at for f in schedule.faults]
    assert times == sorted(times)
    for fault in schedule.faults:
        if fault.kind is FaultKind.MONITOR_KILL:
            assert (fault.hits, fault.slots) == (0, ())
            assert fault.monitor in (0, 1)
            continue
        assert sorted(fault.slots) == list(range(profile.agents))  # every slot, in some order
        assert fault.hits == (2 if fault.kind is FaultKind.KILL_TWO else 1)
        if fault.kind is FaultKind.FREEZE:
            assert fault.pause > profile.heartbeat_timeout  # frozen past the timeout
        if fault.kind is FaultKind.KILL_THEN_MONITOR:
            assert 0 < fault.pause < 1  # the monitor is killed within a second
    assert all(profile.capacity[0] <= c <= profile.capacity[1] for c in schedule.capacities)


def test_tasks_come_in_waves_with_their_steps() -> None:
    profile = PROFILES["quick"]
    schedule = build_schedule(3, profile)
    steps = schedule.task_steps()
    assert len(steps) == profile.tasks
    assert all(profile.steps[0] <= n <= profile.steps[1] for n in steps.values())
    assert [w.at for w in schedule.waves] == [i * profile.wave_every for i in range(profile.waves)]


def test_a_replacement_depends_on_its_slot_and_generation_only() -> None:
    schedule = build_schedule(5, PROFILES["quick"])
    choices = {(slot, gen): schedule.process(slot, gen) for slot in range(4) for gen in range(8)}
    # Asked in another order, the same answers.
    assert {k: schedule.process(*k) for k in reversed(list(choices))} == choices
    assert all(choices[(slot, 0)].keep_id for slot in range(4))  # the first process: its own id
    later = [c.keep_id for (_, gen), c in choices.items() if gen > 0]
    assert True in later and False in later  # sometimes the same id, sometimes a new one


def test_a_profile_too_small_for_every_fault_kind_is_refused() -> None:
    quick = PROFILES["quick"]
    with pytest.raises(ValueError, match="at least one fault of each"):
        dataclasses.replace(quick, faults=3)
    with pytest.raises(ValueError, match="at least 2 agents"):
        dataclasses.replace(quick, agents=1)
    assert isinstance(dataclasses.replace(quick, faults=9), Profile)


def test_the_command_line_needs_a_seed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args([])
    assert exit_info.value.code == 2
    assert "--seed" in capsys.readouterr().err
    args = parser().parse_args(["--seed", "4", "--quick"])
    assert (args.seed, args.quick) == (4, True)
