"""The monitor group's session timeout: chosen per broker unless configured (no broker needed:
the broker type comes from ``AGENT_FAILOVER_BROKER_IS_TANSU``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent_failover.broker import compat
from agent_failover.config import KafkaConfig, MonitorConfig, Topics
from agent_failover.streams.app import SESSION_TIMEOUT, TANSU_SESSION_TIMEOUT, create_app


@pytest.fixture(autouse=True)
def _no_patches_leak() -> Iterator[None]:
    compat.remove_faust_patches()
    yield
    compat.remove_faust_patches()


def _session(monkeypatch: pytest.MonkeyPatch, tansu: bool, configured: float | None) -> float:
    monkeypatch.setenv(compat.IS_TANSU_ENV, "1" if tansu else "0")
    config = MonitorConfig(
        kafka=KafkaConfig("127.0.0.1:9"),
        topics=Topics(prefix="session-test."),
        app_id="session-test",
        metrics_port=None,
        broker_session_timeout=configured,
    )
    return float(create_app(config).conf.broker_session_timeout)


def test_the_session_is_short_on_the_development_broker_and_kafkas_minimum_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _session(monkeypatch, tansu=True, configured=None) == TANSU_SESSION_TIMEOUT == 2.0
    assert _session(monkeypatch, tansu=False, configured=None) == SESSION_TIMEOUT == 6.0


def test_a_configured_session_wins_on_every_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _session(monkeypatch, tansu=True, configured=4.0) == 4.0
    assert _session(monkeypatch, tansu=False, configured=10.0) == 10.0
