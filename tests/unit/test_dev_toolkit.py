"""The development toolkit without a broker: waiting, choosing a victim, child processes."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from agent_failover.dev.processes import spawn, stop_all
from agent_failover.dev.victim import busiest_agent, reached_step
from agent_failover.dev.waiting import eventually

# A child that ignores SIGTERM, says so on stdout, then waits to be killed.
DEAF = (
    "import signal, sys, threading\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "threading.Event().wait()\n"
)


def test_eventually_returns_the_first_truthy_result() -> None:
    answers = iter([None, [], 0, ["found"]])
    assert eventually(lambda: next(answers), 10, "an answer", interval=0) == ["found"]


def test_eventually_names_what_never_happened() -> None:
    calls: list[int] = []

    def never() -> bool:
        calls.append(1)
        return False

    with pytest.raises(TimeoutError, match=r"timed out after 0\.2 s waiting for the sky to fall"):
        eventually(never, 0.2, "the sky to fall", interval=0.01)
    assert len(calls) > 1  # it polled, and checked once more at the deadline


def test_eventually_lets_the_check_fail_fast() -> None:
    def broken() -> bool:
        raise AssertionError("the process exited")

    with pytest.raises(AssertionError, match="the process exited"):
        eventually(broken, 60, "never reached")


def test_busiest_agent_holds_the_most_tasks_among_the_ready() -> None:
    holdings = {
        "idle": {},
        "early": {"t1": 0, "t2": -1, "t3": -1, "t4": -1},  # the most tasks, none far enough
        "one": {"t5": 5},
        "two": {"t6": 4, "t7": -1},
    }
    assert busiest_agent(holdings, reached_step(4)) == "two"
    assert busiest_agent(holdings, reached_step(0)) == "early"
    assert busiest_agent(holdings, reached_step(9)) is None
    assert busiest_agent({}, reached_step(0)) is None


def test_busiest_agent_ties_go_to_the_first_listed() -> None:
    holdings = {"b": {"t1": 3}, "a": {"t2": 3}}
    assert busiest_agent(holdings, lambda agent, tasks: True) == "b"
    assert busiest_agent(holdings, lambda agent, tasks: agent == "a") == "a"


def test_spawn_logs_output_and_stop_ends_a_child_on_sigterm(tmp_path: Path) -> None:
    log_path = tmp_path / "logs" / "child.log"
    proc = spawn(
        "child",
        ["-c", "import sys, time; print('hello', flush=True); time.sleep(600)"],
        log_path,
    )
    eventually(lambda: "hello" in proc.log_tail(), 30, "the child's output in its log")
    assert proc.alive
    proc.stop(30)
    assert not proc.alive
    assert proc.returncode == -signal.SIGTERM


def test_stop_all_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    deaf = spawn("deaf", ["-c", DEAF], tmp_path / "deaf.log")
    eventually(lambda: "ready" in deaf.log_tail(), 30, "the child to ignore SIGTERM")
    stop_all([deaf], timeout=0.5)
    assert deaf.returncode == -signal.SIGKILL


def test_stop_all_resumes_a_frozen_child_before_sigterm(tmp_path: Path) -> None:
    proc = spawn("frozen", ["-c", "import time; time.sleep(600)"], tmp_path / "frozen.log")
    proc.signal(signal.SIGSTOP)
    eventually(
        lambda: psutil.Process(proc.pid).status() == psutil.STATUS_STOPPED, 30, "it to freeze"
    )
    stop_all([proc], timeout=30)
    assert proc.returncode == -signal.SIGTERM


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_a_spawned_child_dies_with_its_parent(tmp_path: Path) -> None:
    parent_script = (
        "import sys, threading\n"
        "from pathlib import Path\n"
        "from agent_failover.dev.processes import spawn\n"
        f"child = spawn('child', ['-c', 'import time; time.sleep(600)'], Path({str(tmp_path)!r}) "
        "/ 'child.log')\n"
        "print(child.pid, flush=True)\n"
        "threading.Event().wait()\n"
    )
    parent = spawn("parent", ["-c", parent_script], tmp_path / "parent.log", stdout=subprocess.PIPE)
    assert parent.popen.stdout is not None
    with parent.popen.stdout as out:
        try:
            child_pid = int(out.readline())
            assert psutil.pid_exists(child_pid)
        finally:
            parent.signal(signal.SIGKILL)  # no cleanup in the parent
            parent.wait(30)

    def gone() -> bool:
        try:
            return psutil.Process(child_pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    eventually(gone, 30, "the orphaned child to die")
