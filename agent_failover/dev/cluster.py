"""A local supervisor: monitor and agent processes on this machine, for the demo and the tests.

Each process is started with ``sys.executable`` and its own environment, writes its output to a log
file, dies with its parent (PR_SET_PDEATHSIG on Linux), and can be sent any signal (SIGKILL to
crash it, SIGTERM to stop it gracefully, SIGSTOP/SIGCONT to freeze it).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

from agent_failover.config import Topics

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: a crashed test run leaves no orphan agents behind.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclasses.dataclass
class Proc:
    """One supervised process."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive:
            self.popen.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class LocalCluster:
    """Starts the monitor and agents as child processes against one broker and topic set."""

    def __init__(
        self,
        bootstrap_servers: str,
        topics: Topics,
        log_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topics = topics
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, Proc] = {}
        self._env = dict(env or {})

    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_FAILOVER_")}
        env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
                "AGENT_FAILOVER_TOPIC_PREFIX": self.topics.prefix,
                "AGENT_FAILOVER_AGENT_PARTITIONS": str(self.topics.agent_partitions),
                "AGENT_FAILOVER_TASK_PARTITIONS": str(self.topics.task_partitions),
                "AGENT_FAILOVER_CHECKPOINT_PARTITIONS": str(self.topics.checkpoint_partitions),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self._env)
        return env

    def start(self, name: str, args: list[str], env: Mapping[str, str] | None = None) -> Proc:
        """Start ``python -m <args>`` as ``name`` (a name is used once)."""
        if name in self.procs and self.procs[name].alive:
            raise RuntimeError(f"process {name} is already running")
        log_path = self.log_dir / f"{name}.log"
        full_env = self.base_env()
        full_env.update(env or {})
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                [sys.executable, *args],
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
        proc = Proc(name=name, popen=popen, log_path=log_path)
        self.procs[name] = proc
        return proc

    def start_monitor(self, name: str = "monitor", env: Mapping[str, str] | None = None) -> Proc:
        """Start a monitor worker (``agent-failover monitor``)."""
        return self.start(name, ["-m", "agent_failover.cli", "monitor"], env)

    def start_agent(self, agent_id: str, env: Mapping[str, str] | None = None) -> Proc:
        """Start a demo agent process (``agent_failover.dev.worker``) with this agent id."""
        return self.start(
            agent_id,
            ["-m", "agent_failover.dev.worker"],
            {"AGENT_FAILOVER_AGENT_ID": agent_id, **(env or {})},
        )

    def stop_all(self, timeout: float = 10.0) -> None:
        """SIGTERM every live process, then SIGKILL what is left after ``timeout``."""
        for proc in self.procs.values():
            if proc.alive:
                proc.signal(signal.SIGCONT)  # a frozen process cannot handle SIGTERM
                proc.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            if proc.wait(max(0.0, deadline - time.monotonic())) is None:
                proc.signal(signal.SIGKILL)
                proc.wait(5.0)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()


def wait_until(
    predicate: Callable[[], bool], timeout: float, interval: float = 0.05, what: str = "condition"
) -> None:
    """Poll ``predicate`` until it is true; raise TimeoutError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
