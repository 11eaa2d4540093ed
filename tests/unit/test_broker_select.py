"""Broker selection's errors: a typo fails, a Kafka container that cannot run is a skip reason."""

from __future__ import annotations

import pytest

from agent_failover.broker import select
from agent_failover.errors import ConfigError, KafkaContainerUnavailable


def test_an_unknown_test_broker_is_a_config_error_not_a_reason_to_skip() -> None:
    with (
        pytest.raises(ConfigError, match="AGENT_FAILOVER_TEST_BROKER='testcontainer'"),
        select.broker_from_env(env={"AGENT_FAILOVER_TEST_BROKER": "testcontainer"}),
    ):
        pass


def test_no_docker_engine_is_kafka_container_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(select, "docker_unavailable_reason", lambda: "no Docker engine reachable")
    with (
        pytest.raises(KafkaContainerUnavailable, match="no Docker engine reachable") as raised,
        select.broker_from_env(env={"AGENT_FAILOVER_TEST_BROKER": "testcontainers"}),
    ):
        pass
    assert not raised.value.retryable
