"""Configuration is validated up front, with errors that name the setting; secrets stay hidden."""

from __future__ import annotations

import pytest

from agent_failover.config import (
    AgentConfig,
    CheckpointMode,
    CheckpointPolicy,
    KafkaConfig,
    MonitorConfig,
    Topics,
)
from agent_failover.errors import ConfigError

ENV = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092"}


@pytest.mark.parametrize("servers", ["", " , ", "localhost", "host:port", "h:0", "h:70000"])
def test_bad_bootstrap_servers(servers: str) -> None:
    with pytest.raises(ConfigError):
        KafkaConfig(bootstrap_servers=servers)


def test_missing_broker_says_what_to_set() -> None:
    with pytest.raises(ConfigError, match="KAFKA_BOOTSTRAP_SERVERS"):
        KafkaConfig.from_env({})


def test_password_never_in_repr() -> None:
    conf = KafkaConfig(
        bootstrap_servers="h:1",
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="u",
        sasl_password="hunter2",
    )
    assert "hunter2" not in repr(conf)
    assert "hunter2" not in repr(AgentConfig(kafka=conf, agent_id="a"))
    assert conf.as_librdkafka_dict()["sasl.password"] == "hunter2"


def test_sasl_needs_credentials() -> None:
    with pytest.raises(ConfigError, match="sasl_username"):
        KafkaConfig(bootstrap_servers="h:1", sasl_mechanism="PLAIN")


def test_agent_config_from_env() -> None:
    env = {
        **ENV,
        "AGENT_FAILOVER_AGENT_ID": "worker-1",
        "AGENT_FAILOVER_CAPACITY": "3",
        "AGENT_FAILOVER_HEARTBEAT_INTERVAL": "0.25",
        "AGENT_FAILOVER_CHECKPOINT_POLICY": "every:5",
        "AGENT_FAILOVER_POOL": "standby",
        "AGENT_FAILOVER_TOPIC_PREFIX": "x.",
    }
    conf = AgentConfig.from_env(env)
    assert conf.agent_id == "worker-1"
    assert conf.capacity == 3
    assert conf.heartbeat_interval == 0.25
    assert conf.checkpoint_policy == CheckpointPolicy(CheckpointMode.INTERVAL, 5.0)
    assert conf.pool == "standby"
    assert conf.topics.heartbeats == "x.heartbeats"


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("AGENT_FAILOVER_CAPACITY", "many", "not an integer"),
        ("AGENT_FAILOVER_CAPACITY", "0", "capacity must be >= 1"),
        ("AGENT_FAILOVER_HEARTBEAT_INTERVAL", "-1", "heartbeat_interval must be > 0"),
        ("AGENT_FAILOVER_CHECKPOINT_POLICY", "sometimes", "expected every_step"),
        ("AGENT_FAILOVER_POOL", "spare", "pool must be"),
        ("AGENT_FAILOVER_TOPIC_PREFIX", "a b", "topic prefix"),
    ],
)
def test_agent_config_errors_name_the_problem(var: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AgentConfig.from_env({**ENV, var: value}, agent_id="a")


def test_monitor_defaults_and_validation() -> None:
    conf = MonitorConfig.from_env(ENV)
    assert conf.heartbeat_timeout == 3.0
    assert conf.effective_grace_period == 0.0
    assert conf.broker_session_timeout is None  # chosen per broker by the monitor
    assert conf.effective_degraded_after == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="grace_period"):
        MonitorConfig(kafka=KafkaConfig("h:1"), grace_period=-1.0)
    with pytest.raises(ConfigError, match="broker_session_timeout"):
        MonitorConfig(kafka=KafkaConfig("h:1"), broker_session_timeout=0.0)
    with pytest.raises(ConfigError, match="tick_interval"):
        MonitorConfig(kafka=KafkaConfig("h:1"), heartbeat_timeout=1.0, tick_interval=0.6)
    with pytest.raises(ConfigError, match="degraded_after"):
        MonitorConfig(kafka=KafkaConfig("h:1"), degraded_after=5.0)


def test_topics_names_share_one_prefix() -> None:
    topics = Topics(prefix="p.")
    names = [
        topics.heartbeats,
        topics.task_events,
        topics.control,
        topics.priority,
        topics.tasks,
        topics.checkpoints,
        topics.failovers,
        topics.dead_letter,
        topics.fleet,
    ]
    assert all(n.startswith("p.") for n in names)
    assert len(set(names)) == len(names)
