"""Who detection asks about at a tick: changed, watched, silent but not quiet, and due timers."""

from __future__ import annotations

from agent_failover.streams.suspects import SuspectScheduler


def test_changed_agents_are_asked_once_and_marked_changed() -> None:
    s = SuspectScheduler()
    s.touch(["b", "a"])
    todo = s.take(1.0, silent=[])
    assert todo.order == ("a", "b") and todo.changed == {"a", "b"}
    assert s.take(1.1, silent=[]).order == ()


def test_watched_agents_are_asked_every_tick_until_unwatched() -> None:
    s = SuspectScheduler()
    s.watch("a")
    assert s.take(1.0, silent=[]).order == ("a",)
    assert s.take(1.1, silent=[]).order == ("a",)
    s.unwatch("a")
    assert s.take(1.2, silent=[]).order == ()


def test_quiet_agents_are_skipped_while_silent_until_they_change() -> None:
    s = SuspectScheduler()
    todo = s.take(1.0, silent=["a", "b"])
    assert todo.order == ("a", "b") and todo.changed == frozenset()
    s.quiet("a")
    assert s.take(1.1, silent=["a", "b"]).order == ("b",)
    s.touch(["a"])  # its record was written: no longer quiet
    assert s.take(1.2, silent=["a", "b"]).order == ("a", "b")
    assert s.take(1.3, silent=["a"]).order == ("a",)


def test_timers_fire_once_when_due_and_only_the_newest_counts() -> None:
    s = SuspectScheduler()
    s.wake_at("a", 5.0)
    s.wake_at("a", 5.0)  # the same deadline: one timer
    s.wake_at("b", 3.0)
    assert s.take(2.9, silent=[]).order == ()
    assert s.take(3.0, silent=[]).order == ("b",)
    assert s.take(5.0, silent=[]).order == ("a",)
    assert s.take(9.0, silent=[]).order == ()


def test_forget_and_reset_start_over() -> None:
    s = SuspectScheduler()
    s.watch("a")
    s.quiet("b")
    s.forget("a")
    s.forget("b")
    assert s.take(1.0, silent=["b"]).order == ("b",)
    s.watch("c")
    s.wake_at("d", 2.0)
    s.reset(["x", "y"])
    todo = s.take(3.0, silent=[])
    assert todo.order == ("x", "y") and todo.changed == {"x", "y"}
