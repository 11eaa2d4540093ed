"""Configuration: one validated, frozen object per concern.

Each reads its environment variables through :data:`~agent_failover.variables.SETTINGS` (every
variable agent-failover reads, re-exported here); the checkpoint policy is
:mod:`agent_failover.checkpoint_policy`.

* :class:`KafkaConfig`: how to reach the broker (bootstrap servers, SASL and TLS) and how records
  are signed (the fleet's signing key). Secrets are kept out of ``repr`` and logs.
* :class:`Topics`: topic names (one prefix) and partition counts.
* :class:`AgentConfig`: what an agent embedding the SDK needs.
* :class:`MonitorConfig`: the monitor's detection and failover policy.

Every class has ``from_env()`` reading variables with the ``AGENT_FAILOVER_`` prefix (and the
standard ``KAFKA_BOOTSTRAP_SERVERS``); invalid values raise :class:`ConfigError` naming the
variable and quoting the value.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from agent_failover.checkpoint_policy import CheckpointMode, CheckpointPolicy
from agent_failover.errors import ConfigError
from agent_failover.signing import Signer
from agent_failover.variables import (
    BOOTSTRAP_ENV,
    ENV_PREFIX,
    LOG_FORMATS,
    LOG_LEVELS,
    SETTINGS,
)

__all__ = [
    "BOOTSTRAP_ENV",
    "ENV_PREFIX",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "MAX_INTERVAL_SHARE",
    "SETTINGS",
    "AgentConfig",
    "CheckpointMode",
    "CheckpointPolicy",
    "KafkaConfig",
    "MonitorConfig",
    "Topics",
    "check_heartbeat_interval",
    "default_agent_id",
    "interval_problem",
]


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


@dataclasses.dataclass(frozen=True)
class KafkaConfig:
    """How to reach the Kafka cluster.

    ``extra`` passes further librdkafka settings through unchanged (for the SDK's clients).
    ``connect_timeout``: how long a start-up probe waits for the broker to answer.
    """

    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = dataclasses.field(default=None, repr=False)
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: str | None = dataclasses.field(default=None, repr=False)
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    connect_timeout: float = 5.0
    # Record signatures (docs/security.md): the key itself or a file holding it, and a second
    # key accepted on read during a rotation. Kept out of repr and logs.
    signing_key: str | None = dataclasses.field(default=None, repr=False)
    signing_key_file: str | None = None
    signing_key_previous: str | None = dataclasses.field(default=None, repr=False)
    signing_key_previous_file: str | None = None
    #: Signs what this configuration's clients write and checks what they read.
    signer: Signer = dataclasses.field(init=False, repr=False, compare=False)

    ENV: ClassVar[dict[str, str]] = SETTINGS.fields("kafka")

    def __post_init__(self) -> None:
        if not self.bootstrap_servers.strip(" ,"):
            raise ConfigError(f"bootstrap_servers is empty: set {BOOTSTRAP_ENV}=host:port")
        object.__setattr__(self, "security_protocol", self.security_protocol.upper())
        SETTINGS.check_fields(self, self.ENV)
        self._check_security()
        signer = Signer.from_settings(
            self.signing_key,
            self.signing_key_file,
            self.signing_key_previous,
            self.signing_key_previous_file,
        )
        object.__setattr__(self, "signer", signer)

    def _check_security(self) -> None:
        """SASL and TLS settings that contradict each other are an error, not silently ignored
        (librdkafka skips SASL settings under a non-SASL protocol, for instance)."""
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and not self.sasl_mechanism:
            raise ConfigError(
                f"security protocol {self.security_protocol} needs a SASL mechanism "
                "(AGENT_FAILOVER_KAFKA_SASL_MECHANISM: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
            )
        if self.sasl_mechanism and not sasl:
            raise ConfigError(
                f"a SASL mechanism is set but the security protocol is {self.security_protocol}: "
                "set AGENT_FAILOVER_KAFKA_SECURITY_PROTOCOL to SASL_SSL or SASL_PLAINTEXT"
            )
        if self.sasl_mechanism and not (self.sasl_username and self.sasl_password):
            raise ConfigError(
                "sasl_mechanism needs sasl_username and sasl_password "
                "(AGENT_FAILOVER_KAFKA_SASL_USERNAME, AGENT_FAILOVER_KAFKA_SASL_PASSWORD)"
            )
        if bool(self.ssl_certificate_location) != bool(self.ssl_key_location):
            raise ConfigError(
                "mutual TLS needs both the client certificate and its key "
                "(AGENT_FAILOVER_KAFKA_SSL_CERTIFICATE_LOCATION, "
                "AGENT_FAILOVER_KAFKA_SSL_KEY_LOCATION)"
            )

    @classmethod
    def coerce(cls, value: KafkaConfig | str) -> KafkaConfig:
        """Accept a config object or a plain ``host:port[,host:port]`` string."""
        return value if isinstance(value, KafkaConfig) else cls(bootstrap_servers=value)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """Read ``KAFKA_BOOTSTRAP_SERVERS`` and ``AGENT_FAILOVER_KAFKA_*`` security settings."""
        kwargs = SETTINGS.read_fields(_env(env), cls.ENV)
        if "bootstrap_servers" not in kwargs:
            raise ConfigError(
                f"no broker configured: set {BOOTSTRAP_ENV}=host:port "
                "(or run `agent-failover broker` for the embedded development broker)"
            )
        return cls(**kwargs)

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
        if self.ssl_certificate_location:
            conf["ssl.certificate.location"] = self.ssl_certificate_location
        if self.ssl_key_location:
            conf["ssl.key.location"] = self.ssl_key_location
        if self.ssl_key_password:
            conf["ssl.key.password"] = self.ssl_key_password
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
    whole story; ``tasks``, ``assigned`` and ``outcomes`` share ``task_partitions`` (keyed by task
    id, so a task's records of the three lie in partitions of one number).
    """

    prefix: str = "af."
    agent_partitions: int = 8
    task_partitions: int = 8
    checkpoint_partitions: int = 8
    replication_factor: int = 1

    ENV: ClassVar[dict[str, str]] = SETTINGS.fields("topics")

    def __post_init__(self) -> None:
        SETTINGS.check_fields(self, self.ENV)

    @property
    def heartbeats(self) -> str:
        return f"{self.prefix}heartbeats"

    @property
    def checkpoints(self) -> str:
        return f"{self.prefix}checkpoints"

    @property
    def tasks(self) -> str:
        """Submitted work (key: task id); read only by the monitor's intake."""
        return f"{self.prefix}tasks"

    @property
    def assigned(self) -> str:
        """The intake's decisions, one partition per task partition (key: task id)."""
        return f"{self.prefix}tasks.assigned"

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

    @property
    def outcomes(self) -> str:
        """How each task ended, published by the monitor (key: task id; the first per task
        counts); as many partitions as ``tasks``."""
        return f"{self.prefix}outcomes"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """Read ``AGENT_FAILOVER_TOPIC_PREFIX`` and ``AGENT_FAILOVER_*_PARTITIONS``."""
        return cls(**SETTINGS.read_fields(_env(env), cls.ENV))


#: The longest heartbeat interval a heartbeat timeout allows, as a fraction of the timeout: one
#: heartbeat may be lost or late without the agent being failed or its lease running out.
MAX_INTERVAL_SHARE = 0.5


def interval_problem(interval: float, timeout: float) -> str | None:
    """Why a heartbeat ``interval`` cannot satisfy a heartbeat ``timeout``, or None if it can.

    The agent refuses such a configuration at start and the monitor refuses such an agent (a
    fence with reason ``misconfigured``); both say it in these words.
    """
    if interval <= timeout * MAX_INTERVAL_SHARE:
        return None
    return (
        f"a heartbeat interval of {interval:g} s (AGENT_FAILOVER_HEARTBEAT_INTERVAL) cannot "
        f"satisfy a heartbeat timeout of {timeout:g} s (AGENT_FAILOVER_HEARTBEAT_TIMEOUT): the "
        f"interval must be at most half the timeout, {timeout * MAX_INTERVAL_SHARE:g} s"
    )


def check_heartbeat_interval(interval: float, timeout: float) -> None:
    """Raise :class:`ConfigError` if ``interval`` cannot satisfy ``timeout``."""
    problem = interval_problem(interval, timeout)
    if problem is not None:
        raise ConfigError(problem)


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
    # Fetch wait of the latency-critical consumers (priority, control, checkpoint reads). None:
    # 500 ms, or 10 ms on a broker that does not wake a waiting fetch on new data (Tansu; see
    # docs/tansu.md), detected at start.
    fetch_wait_max_ms: int | None = None
    # The monitor's heartbeat timeout (the same variable): the agent's lease rests on it, so an
    # agent configured with more than the monitor uses would act while already fenced.
    heartbeat_timeout: float = 3.0
    # Graceful stop: how long running handlers may take to finish the step in flight (reach
    # their next checkpoint) before their tasks are released. 0 releases at once with the last
    # checkpoint: the fastest handoff, but the step in flight is redone elsewhere.
    handoff_wait: float = 10.0
    # Graceful stop: how long to wait for handlers to return after their tasks were released.
    close_timeout: float = 10.0

    ENV: ClassVar[dict[str, str]] = SETTINGS.fields("agent")

    def __post_init__(self) -> None:
        SETTINGS.check_fields(self, self.ENV)
        if not self.close_timeout >= 0:
            raise ConfigError(f"close_timeout must be >= 0, got {self.close_timeout!r}")
        check_heartbeat_interval(self.heartbeat_interval, self.heartbeat_timeout)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> AgentConfig:
        """Build from ``AGENT_FAILOVER_*`` variables; keyword arguments win over the environment
        (a variable is not even read for a field given here). Unknown ``AGENT_FAILOVER_*``
        variables are logged as warnings."""
        return cls(**_from_env(cls.ENV, env, overrides))


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
    # Address and port of /metrics, /healthz and /readyz (port None: no server, 0: any free port).
    metrics_host: str = "0.0.0.0"
    metrics_port: int | None = 9108
    web_port: int | None = None  # faust's web server; off unless set
    data_dir: str = ".agent-failover-monitor"
    # Worker's own session timeout in the monitor group (faust's default of 60 s is too slow);
    # None: 2 s on the development broker, 6 s (Apache Kafka's lowest by default) elsewhere.
    broker_session_timeout: float | None = None
    # A task waiting this long while agents have free slots counts as stuck (a metric).
    stuck_after: float = 30.0

    ENV: ClassVar[dict[str, str]] = SETTINGS.fields("monitor")

    def __post_init__(self) -> None:
        SETTINGS.check_fields(self, self.ENV)
        if self.tick_interval > self.heartbeat_timeout / 2:
            raise ConfigError(
                "tick_interval must be at most half the heartbeat_timeout "
                "(AGENT_FAILOVER_TICK_INTERVAL, AGENT_FAILOVER_HEARTBEAT_TIMEOUT)"
            )
        if self.degraded_after is not None and not self.degraded_after < self.heartbeat_timeout:
            raise ConfigError(
                "degraded_after must be below heartbeat_timeout "
                "(AGENT_FAILOVER_DEGRADED_AFTER, AGENT_FAILOVER_HEARTBEAT_TIMEOUT)"
            )

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
        """Build from ``AGENT_FAILOVER_*`` variables; keyword arguments win over the environment
        (a variable is not even read for a field given here). Unknown ``AGENT_FAILOVER_*``
        variables are logged as warnings."""
        return cls(**_from_env(cls.ENV, env, overrides))


def _from_env(
    fields: Mapping[str, str], env: Mapping[str, str] | None, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """Keyword arguments of an agent or monitor configuration: ``fields`` read from ``env``,
    broker and topics too, then ``overrides``."""
    env = _env(env)
    SETTINGS.warn_unknown(env)
    kwargs = SETTINGS.read_fields(env, fields, skip=overrides)
    if "kafka" not in overrides:
        kwargs["kafka"] = KafkaConfig.from_env(env)
    if "topics" not in overrides:
        kwargs["topics"] = Topics.from_env(env)
    kwargs.update(overrides)
    return kwargs
