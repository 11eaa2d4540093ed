"""Configuration: one validated, frozen object per concern.

* :class:`KafkaConfig`: how to reach the broker (bootstrap servers, security). Secrets are kept out
  of ``repr`` and logs.
* :class:`Topics`: topic names (one prefix) and partition counts.
* :class:`AgentConfig`: what an agent embedding the SDK needs.
* :class:`MonitorConfig`: the monitor's detection and failover policy.

Every class has ``from_env()`` reading variables with the ``AGENT_FAILOVER_`` prefix (and the
standard ``KAFKA_BOOTSTRAP_SERVERS``); invalid values raise :class:`ConfigError` naming the
variable.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import socket
from collections.abc import Mapping
from typing import Any, Self

from agent_failover.errors import ConfigError

ENV_PREFIX = "AGENT_FAILOVER_"


def _env(name: str, env: Mapping[str, str]) -> str | None:
    value = env.get(ENV_PREFIX + name)
    return value if value not in (None, "") else None


def _env_float(name: str, env: Mapping[str, str]) -> float | None:
    raw = _env(name, env)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{ENV_PREFIX}{name}={raw!r} is not a number") from None


def _env_int(name: str, env: Mapping[str, str]) -> int | None:
    raw = _env(name, env)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{ENV_PREFIX}{name}={raw!r} is not an integer") from None


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{name} must be > 0, got {value!r}")


@dataclasses.dataclass(frozen=True)
class KafkaConfig:
    """How to reach the Kafka cluster.

    ``extra`` passes further librdkafka settings through unchanged (for the SDK's clients).
    """

    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = dataclasses.field(default=None, repr=False)
    ssl_ca_location: str | None = None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        servers = [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()]
        if not servers:
            raise ConfigError("bootstrap_servers is empty: set KAFKA_BOOTSTRAP_SERVERS=host:port")
        for server in servers:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(f"bootstrap server {server!r} is not host:port")
        protocols = {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}
        if self.security_protocol.upper() not in protocols:
            raise ConfigError(
                f"security_protocol {self.security_protocol!r} is not one of {sorted(protocols)}"
            )
        if self.sasl_mechanism and not (self.sasl_username and self.sasl_password):
            raise ConfigError("sasl_mechanism needs sasl_username and sasl_password")

    @classmethod
    def coerce(cls, value: KafkaConfig | str) -> KafkaConfig:
        """Accept a config object or a plain ``host:port[,host:port]`` string."""
        return value if isinstance(value, KafkaConfig) else cls(bootstrap_servers=value)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """Read ``KAFKA_BOOTSTRAP_SERVERS`` and ``AGENT_FAILOVER_KAFKA_*`` security settings."""
        env = os.environ if env is None else env
        servers = env.get("KAFKA_BOOTSTRAP_SERVERS") or _env("BOOTSTRAP_SERVERS", env)
        if not servers:
            raise ConfigError(
                "no broker configured: set KAFKA_BOOTSTRAP_SERVERS=host:port "
                "(or run `agent-failover broker` for the embedded development broker)"
            )
        return cls(
            bootstrap_servers=servers,
            security_protocol=_env("KAFKA_SECURITY_PROTOCOL", env) or "PLAINTEXT",
            sasl_mechanism=_env("KAFKA_SASL_MECHANISM", env),
            sasl_username=_env("KAFKA_SASL_USERNAME", env),
            sasl_password=_env("KAFKA_SASL_PASSWORD", env),
            ssl_ca_location=_env("KAFKA_SSL_CA_LOCATION", env),
        )

    def as_librdkafka_dict(self) -> dict[str, Any]:
        """Settings for confluent-kafka clients (contains the password: never log it)."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol.lower(),
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.sasl_username
            conf["sasl.password"] = self.sasl_password
        if self.ssl_ca_location:
            conf["ssl.ca.location"] = self.ssl_ca_location
        conf.update(self.extra)
        return conf

    def faust_broker_url(self) -> str:
        """The ``kafka://`` URL faust takes."""
        return ";".join(f"kafka://{s.strip()}" for s in self.bootstrap_servers.split(","))


@dataclasses.dataclass(frozen=True)
class Topics:
    """Topic names and partition counts.

    ``heartbeats``, ``task_events``, ``control`` and ``priority`` are keyed by agent id and must
    have the same partition count (``agent_partitions``) so one monitor worker owns an agent's
    whole story.
    """

    prefix: str = "af."
    agent_partitions: int = 8
    task_partitions: int = 8
    checkpoint_partitions: int = 8
    replication_factor: int = 1

    def __post_init__(self) -> None:
        for name in ("agent_partitions", "task_partitions", "checkpoint_partitions"):
            if getattr(self, name) < 1:
                raise ConfigError(f"Topics.{name} must be >= 1")
        if self.replication_factor < 1:
            raise ConfigError("Topics.replication_factor must be >= 1")
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if not set(self.prefix) <= allowed:
            raise ConfigError(f"topic prefix {self.prefix!r} may use only [a-zA-Z0-9._-]")

    @property
    def heartbeats(self) -> str:
        return f"{self.prefix}heartbeats"

    @property
    def checkpoints(self) -> str:
        return f"{self.prefix}checkpoints"

    @property
    def tasks(self) -> str:
        return f"{self.prefix}tasks"

    @property
    def priority(self) -> str:
        return f"{self.prefix}tasks.priority"

    @property
    def task_events(self) -> str:
        return f"{self.prefix}task-events"

    @property
    def control(self) -> str:
        return f"{self.prefix}control"

    @property
    def failovers(self) -> str:
        return f"{self.prefix}failovers"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}dead-letter"

    @property
    def fleet(self) -> str:
        """Monitor workers' summaries of the healthy agents they own (one partition)."""
        return f"{self.prefix}fleet"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """Read ``AGENT_FAILOVER_TOPIC_PREFIX`` and ``AGENT_FAILOVER_*_PARTITIONS``."""
        env = os.environ if env is None else env
        kwargs: dict[str, Any] = {}
        if (prefix := _env("TOPIC_PREFIX", env)) is not None:
            kwargs["prefix"] = prefix
        for field, var in (
            ("agent_partitions", "AGENT_PARTITIONS"),
            ("task_partitions", "TASK_PARTITIONS"),
            ("checkpoint_partitions", "CHECKPOINT_PARTITIONS"),
            ("replication_factor", "REPLICATION_FACTOR"),
        ):
            if (value := _env_int(var, env)) is not None:
                kwargs[field] = value
        return cls(**kwargs)


class CheckpointMode(enum.StrEnum):
    """When ``TaskContext.progress()`` writes a durable checkpoint."""

    EVERY_STEP = "every_step"
    INTERVAL = "interval"
    ON_DEMAND = "on_demand"


@dataclasses.dataclass(frozen=True)
class CheckpointPolicy:
    """Checkpoint policy: every step, at most every ``interval_s`` seconds, or only on demand.

    ``TaskContext.checkpoint()`` always writes; ``TaskContext.progress()`` writes as the policy
    says.
    """

    mode: CheckpointMode = CheckpointMode.EVERY_STEP
    interval_s: float = 1.0

    def __post_init__(self) -> None:
        _positive("CheckpointPolicy.interval_s", self.interval_s)

    @classmethod
    def every_step(cls) -> CheckpointPolicy:
        return cls(CheckpointMode.EVERY_STEP)

    @classmethod
    def every(cls, seconds: float) -> CheckpointPolicy:
        return cls(CheckpointMode.INTERVAL, seconds)

    @classmethod
    def on_demand(cls) -> CheckpointPolicy:
        return cls(CheckpointMode.ON_DEMAND)

    @classmethod
    def parse(cls, text: str) -> CheckpointPolicy:
        """Parse ``every_step``, ``on_demand`` or ``every:<seconds>``."""
        if text == CheckpointMode.EVERY_STEP:
            return cls.every_step()
        if text == CheckpointMode.ON_DEMAND:
            return cls.on_demand()
        if text.startswith("every:"):
            try:
                return cls.every(float(text.removeprefix("every:")))
            except ValueError:
                pass
        raise ConfigError(
            f"checkpoint policy {text!r}: expected every_step, on_demand or every:<seconds>"
        )


def default_agent_id() -> str:
    """``POD_NAME`` (the pod's name, from the Kubernetes downward API), else ``<host>-<pid>``."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """What an agent process needs; see the README's configuration reference."""

    kafka: KafkaConfig
    agent_id: str = dataclasses.field(default_factory=default_agent_id)
    topics: Topics = dataclasses.field(default_factory=Topics)
    capacity: int = 1
    heartbeat_interval: float = 1.0
    checkpoint_policy: CheckpointPolicy = dataclasses.field(default_factory=CheckpointPolicy)
    pool: str = "active"
    group_id: str = "af-agents"
    session_timeout_ms: int = 6000
    # Fetch wait of the latency-critical consumers (priority, control, checkpoint reads). None:
    # 500 ms, or 10 ms on a broker that does not wake a waiting fetch on new data (Tansu; see
    # docs/tansu.md), detected at start.
    fetch_wait_max_ms: int | None = None
    # Graceful stop: how long running handlers may take to reach their next checkpoint before
    # their tasks are released. 0 releases at once with the last checkpoint (the step in
    # progress is redone elsewhere): the fastest handoff. Longer saves that step's work.
    handoff_wait: float = 0.0
    # Graceful stop: how long to wait for handlers to return after their tasks were released.
    close_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not self.agent_id or len(self.agent_id) > 249:
            raise ConfigError("agent_id must be 1..249 characters")
        if self.capacity < 1:
            raise ConfigError(f"capacity must be >= 1, got {self.capacity}")
        _positive("heartbeat_interval", self.heartbeat_interval)
        if self.pool not in ("active", "standby"):
            raise ConfigError(f"pool must be 'active' or 'standby', got {self.pool!r}")
        if self.session_timeout_ms < 1000:
            raise ConfigError("session_timeout_ms must be >= 1000")
        if self.handoff_wait < 0:
            raise ConfigError(f"handoff_wait must be >= 0, got {self.handoff_wait!r}")
        if self.fetch_wait_max_ms is not None and not 0 < self.fetch_wait_max_ms <= 10_000:
            raise ConfigError("fetch_wait_max_ms must be in 1..10000")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> AgentConfig:
        """Build from ``AGENT_FAILOVER_*`` variables; keyword arguments win over the environment."""
        env = os.environ if env is None else env
        kwargs: dict[str, Any] = {}
        if "kafka" not in overrides:
            kwargs["kafka"] = KafkaConfig.from_env(env)
        kwargs["topics"] = Topics.from_env(env)
        if (agent_id := _env("AGENT_ID", env)) is not None:
            kwargs["agent_id"] = agent_id
        if (capacity := _env_int("CAPACITY", env)) is not None:
            kwargs["capacity"] = capacity
        if (interval := _env_float("HEARTBEAT_INTERVAL", env)) is not None:
            kwargs["heartbeat_interval"] = interval
        if (policy := _env("CHECKPOINT_POLICY", env)) is not None:
            kwargs["checkpoint_policy"] = CheckpointPolicy.parse(policy)
        if (pool := _env("POOL", env)) is not None:
            kwargs["pool"] = pool
        if (group := _env("GROUP_ID", env)) is not None:
            kwargs["group_id"] = group
        if (session := _env_int("SESSION_TIMEOUT_MS", env)) is not None:
            kwargs["session_timeout_ms"] = session
        if (handoff := _env_float("HANDOFF_WAIT", env)) is not None:
            kwargs["handoff_wait"] = handoff
        if (wait := _env_int("FETCH_WAIT_MAX_MS", env)) is not None:
            kwargs["fetch_wait_max_ms"] = wait
        kwargs.update(overrides)
        return cls(**kwargs)


@dataclasses.dataclass(frozen=True)
class MonitorConfig:
    """The monitor's detection and failover policy; see the README's configuration reference."""

    kafka: KafkaConfig
    topics: Topics = dataclasses.field(default_factory=Topics)
    app_id: str = "agent-failover-monitor"
    # An agent epoch whose heartbeats stop for this long (monitor clock) is failed.
    heartbeat_timeout: float = 3.0
    # Degraded after this long without a heartbeat (default: a third of the timeout).
    degraded_after: float | None = None
    # How often the detection timer runs.
    tick_interval: float = 0.05
    # Extra seconds before silence counts after this worker takes over partitions or resumes
    # after a stall (0: none; an agent never heard is silent from the takeover anyway).
    grace_period: float = 0.0
    # Session timeout of the agents' task consumer group, to settle unconfirmed claims.
    agents_session_timeout: float = 6.0
    agents_group_id: str = "af-agents"
    metrics_port: int | None = 9108
    web_port: int | None = None  # faust's web server; off unless set
    data_dir: str = ".agent-failover-monitor"
    # Worker's own session timeout in the monitor group (faust's default of 60 s is too slow);
    # None: 2 s on the development broker, 6 s (Apache Kafka's lowest by default) elsewhere.
    broker_session_timeout: float | None = None

    def __post_init__(self) -> None:
        _positive("heartbeat_timeout", self.heartbeat_timeout)
        _positive("tick_interval", self.tick_interval)
        if self.tick_interval > self.heartbeat_timeout / 2:
            raise ConfigError("tick_interval must be at most half the heartbeat_timeout")
        if self.degraded_after is not None and not 0 < self.degraded_after < self.heartbeat_timeout:
            raise ConfigError("degraded_after must be between 0 and heartbeat_timeout")
        if self.grace_period < 0:
            raise ConfigError("grace_period must be >= 0")
        _positive("agents_session_timeout", self.agents_session_timeout)
        if self.broker_session_timeout is not None:
            _positive("broker_session_timeout", self.broker_session_timeout)
        for name in ("metrics_port", "web_port"):
            port = getattr(self, name)
            if port is not None and not 0 <= port < 65536:
                raise ConfigError(f"{name} must be a TCP port, got {port}")

    @property
    def effective_degraded_after(self) -> float:
        return (
            self.degraded_after if self.degraded_after is not None else self.heartbeat_timeout / 3
        )

    @property
    def effective_grace_period(self) -> float:
        return self.grace_period

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> MonitorConfig:
        """Build from ``AGENT_FAILOVER_*`` variables; keyword arguments win over the environment."""
        env = os.environ if env is None else env
        kwargs: dict[str, Any] = {}
        if "kafka" not in overrides:
            kwargs["kafka"] = KafkaConfig.from_env(env)
        kwargs["topics"] = Topics.from_env(env)
        for field, var in (
            ("heartbeat_timeout", "HEARTBEAT_TIMEOUT"),
            ("degraded_after", "DEGRADED_AFTER"),
            ("tick_interval", "TICK_INTERVAL"),
            ("grace_period", "GRACE_PERIOD"),
            ("agents_session_timeout", "AGENTS_SESSION_TIMEOUT"),
            ("broker_session_timeout", "MONITOR_SESSION_TIMEOUT"),
        ):
            if (value := _env_float(var, env)) is not None:
                kwargs[field] = value
        for field, var in (("metrics_port", "METRICS_PORT"), ("web_port", "WEB_PORT")):
            if (port := _env_int(var, env)) is not None:
                kwargs[field] = port
        if (app_id := _env("MONITOR_APP_ID", env)) is not None:
            kwargs["app_id"] = app_id
        if (group := _env("GROUP_ID", env)) is not None:
            kwargs["agents_group_id"] = group
        if (data_dir := _env("MONITOR_DATA_DIR", env)) is not None:
            kwargs["data_dir"] = data_dir
        kwargs.update(overrides)
        return cls(**kwargs)
