"""The latency-critical consumers' fetch wait: explicit setting, else tuned to the broker."""

from __future__ import annotations

import pytest

from agent_failover.config import AgentConfig, KafkaConfig
from agent_failover.sdk.kafka import (
    DEFAULT_FETCH_WAIT_MS,
    TANSU_FETCH_WAIT_MS,
    resolve_fetch_wait,
)

KAFKA = KafkaConfig("127.0.0.1:1")  # never contacted: the override below decides


@pytest.mark.parametrize(
    ("is_tansu", "expected"), [("1", TANSU_FETCH_WAIT_MS), ("0", DEFAULT_FETCH_WAIT_MS)]
)
def test_default_follows_the_broker(
    monkeypatch: pytest.MonkeyPatch, is_tansu: str, expected: int
) -> None:
    monkeypatch.setenv("AGENT_FAILOVER_BROKER_IS_TANSU", is_tansu)
    assert resolve_fetch_wait(AgentConfig(kafka=KAFKA, agent_id="a")) == expected


def test_an_explicit_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_FAILOVER_BROKER_IS_TANSU", "1")
    config = AgentConfig(kafka=KAFKA, agent_id="a", fetch_wait_max_ms=250)
    assert resolve_fetch_wait(config) == 250
