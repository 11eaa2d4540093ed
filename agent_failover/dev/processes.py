"""Child processes for the demo, the tests and the benchmarks: started, signalled, stopped.

Every child dies with its parent (Linux ``PR_SET_PDEATHSIG``), so a crashed or SIGKILLed harness
leaves no orphan agent, monitor or broker behind. The kernel ties that signal to the *thread*
that forked the child: start long-lived children from a thread that lives as long as they should
(the main thread, typically), never from a short-lived worker thread.

Only the standard library is imported here: the embedded broker uses :func:`die_with_parent` and
must stay cheap to import.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the kernel SIGKILL the child when its parent dies (Linux).

    None elsewhere (no such facility). libc is loaded here, in the parent, so the child does as
    little as possible between fork and exec: only async-signal-safe calls are safe there when the
    parent has threads.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The parent may have died between fork() and prctl(): the signal would never come.
        if os.getppid() != parent:
            os._exit(1)

    return preexec


@dataclasses.dataclass
class Proc:
    """One child process, its name and the file its output goes to."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.popen.pid

    @property
    def alive(self) -> bool:
        """Whether the child has not exited yet."""
        return self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit code (negative: killed by that signal), None while it runs."""
        return self.popen.poll()

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` if the child still runs (SIGKILL crashes it, SIGSTOP freezes it, ...)."""
        if self.alive:
            self.popen.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        """The exit code once the child exits within ``timeout`` seconds, else None."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; the child is reaped."""
        stop_all([self], timeout)

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the child's output (empty if there is none yet)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def spawn(
    name: str,
    args: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: int | IO[Any] | None = subprocess.DEVNULL,
    stdout: int | IO[Any] | None = None,
) -> Proc:
    """Start ``python ARGS`` (this interpreter) as ``name``; it dies with this process.

    ``env`` is the child's whole environment (default: this process's), with
    ``PYTHONUNBUFFERED=1`` so its log is written as it goes. Output (stdout and stderr) is appended
    to ``log_path``; with ``stdout`` given (``subprocess.PIPE``: read it from
    ``proc.popen.stdout``, or a file) only stderr goes there.
    """
    full_env = dict(os.environ if env is None else env)
    full_env["PYTHONUNBUFFERED"] = "1"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            [sys.executable, *args],
            env=full_env,
            cwd=cwd,
            stdin=stdin,
            stdout=log if stdout is None else stdout,
            stderr=subprocess.STDOUT if stdout is None else log,
            preexec_fn=die_with_parent(),
        )
    return Proc(name=name, popen=popen, log_path=log_path)


def stop_all(procs: Iterable[Proc], timeout: float = 10.0) -> None:
    """SIGTERM every live process, then SIGKILL those still running after ``timeout`` seconds.

    A frozen (SIGSTOPped) process cannot handle SIGTERM, so each also gets SIGCONT first.
    """
    procs = list(procs)
    for proc in procs:
        proc.signal(signal.SIGCONT)
        proc.signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        if proc.wait(max(0.0, deadline - time.monotonic())) is None:
            proc.signal(signal.SIGKILL)
            proc.wait(5.0)
