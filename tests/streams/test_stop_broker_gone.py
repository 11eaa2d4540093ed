"""A monitor worker stops when told to, even with the broker gone.

faust's own stop waits forever to flush its producer when the broker is unreachable; the runner
bounds the stop (``STOP_TIMEOUT``) and exits at once on a second signal. These tests take the
broker away, so each starts an embedded broker of its own (an external broker cannot be
stopped by a test).
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_failover.broker.embedded import EmbeddedBroker
from agent_failover.config import Topics
from agent_failover.dev.processes import Proc, spawn
from agent_failover.dev.waiting import eventually
from agent_failover.streams.runner import EXIT_STOP_TIMEOUT, STOP_TIMEOUT
from agent_failover.topics import ensure_topics

pytestmark = pytest.mark.broker

#: Seconds a monitor may take to start on a loaded box (joining the group, recovery).
START_WAIT = 90.0


@pytest.fixture
def gone(tmp_path: Path) -> Iterator[tuple[Proc, EmbeddedBroker]]:
    """A ready monitor worker whose broker has just been stopped."""
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log")
    bootstrap = broker.start()
    topics = Topics(prefix=f"t{uuid.uuid4().hex[:6]}.")
    ensure_topics(bootstrap, topics)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "AGENT_FAILOVER_TOPIC_PREFIX": topics.prefix,
        "AGENT_FAILOVER_METRICS_HOST": "127.0.0.1",
        "AGENT_FAILOVER_METRICS_PORT": "0",
        "AGENT_FAILOVER_MONITOR_DATA_DIR": str(tmp_path / "data"),
    }
    proc = spawn(
        "monitor", ["-m", "agent_failover.streams.runner"], tmp_path / "monitor.log", env=env
    )
    try:
        eventually(lambda: _said(proc, "Worker]: Ready"), START_WAIT, "the monitor to be ready")
        broker.stop()
        yield proc, broker
    finally:
        proc.signal(signal.SIGKILL)
        proc.wait(10)
        broker.stop()


def _said(proc: Proc, text: str) -> bool:
    if not proc.alive and text not in proc.log_tail(10_000):
        raise AssertionError(f"the monitor exited ({proc.returncode}):\n{proc.log_tail()}")
    return text in proc.log_tail(10_000)


def test_a_stop_that_cannot_flush_ends_in_an_exit(gone: tuple[Proc, EmbeddedBroker]) -> None:
    proc, _ = gone
    proc.signal(signal.SIGTERM)
    # Not a timing assertion: the bound is how long we wait before calling it a hang.
    code = proc.wait(STOP_TIMEOUT + 60)
    assert code == EXIT_STOP_TIMEOUT, proc.log_tail()
    assert f"the stop did not finish within {STOP_TIMEOUT:g} s" in proc.log_tail(50)


def test_a_second_signal_during_the_stop_exits_at_once(
    gone: tuple[Proc, EmbeddedBroker],
) -> None:
    proc, _ = gone
    proc.signal(signal.SIGINT)
    eventually(lambda: _said(proc, "Signal received"), 30, "the stop to begin")
    proc.signal(signal.SIGINT)
    code = proc.wait(STOP_TIMEOUT + 60)
    assert code == EXIT_STOP_TIMEOUT, proc.log_tail()
    assert "SIGINT again during the stop" in proc.log_tail(50)
