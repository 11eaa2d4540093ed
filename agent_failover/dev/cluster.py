"""A local supervisor: monitor and agent processes on this machine, for the demo and the tests.

Each process is started with ``sys.executable`` and its own environment, writes its output to a log
file, dies with its parent, and can be sent any signal (SIGKILL to crash it, SIGTERM to stop it
gracefully, SIGSTOP/SIGCONT to freeze it): see :mod:`agent_failover.dev.processes`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from agent_failover.config import Topics
from agent_failover.dev.processes import Proc, spawn, stop_all


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
        """This process's environment without its ``AGENT_FAILOVER_*`` settings, plus the
        broker, the topic set and the cluster's own settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_FAILOVER_")}
        env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
                "AGENT_FAILOVER_TOPIC_PREFIX": self.topics.prefix,
                "AGENT_FAILOVER_AGENT_PARTITIONS": str(self.topics.agent_partitions),
                "AGENT_FAILOVER_TASK_PARTITIONS": str(self.topics.task_partitions),
                "AGENT_FAILOVER_CHECKPOINT_PARTITIONS": str(self.topics.checkpoint_partitions),
            }
        )
        env.update(self._env)
        return env

    def start(self, name: str, args: list[str], env: Mapping[str, str] | None = None) -> Proc:
        """Start ``python <args>`` as ``name`` (a name is used once)."""
        if name in self.procs and self.procs[name].alive:
            raise RuntimeError(f"process {name} is already running")
        proc = spawn(
            name, args, self.log_dir / f"{name}.log", env={**self.base_env(), **(env or {})}
        )
        self.procs[name] = proc
        return proc

    def start_monitor(self, name: str = "monitor", env: Mapping[str, str] | None = None) -> Proc:
        """Start a monitor worker (``agent-failover monitor``)."""
        return self.start(name, ["-m", "agent_failover.cli", "monitor"], env)

    def start_agent(self, agent_id: str, env: Mapping[str, str] | None = None) -> Proc:
        """Start an agent process (``agent_failover.dev.worker``) with this agent id."""
        return self.start(
            agent_id,
            ["-m", "agent_failover.dev.worker"],
            {"AGENT_FAILOVER_AGENT_ID": agent_id, **(env or {})},
        )

    def stop_all(self, timeout: float = 10.0) -> None:
        """SIGTERM every live process, then SIGKILL what is left after ``timeout``."""
        stop_all(self.procs.values(), timeout)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()
