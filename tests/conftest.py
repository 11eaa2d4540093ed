"""Session-wide fixtures: one broker for the whole run, chosen like everything else chooses it.

``KAFKA_BOOTSTRAP_SERVERS`` set: that broker. ``AGENT_FAILOVER_TEST_BROKER=testcontainers``: a
Kafka container (skipped with the reason where no Docker engine runs). Otherwise the embedded
Tansu broker. Tests isolate themselves with a unique topic prefix, never by a broker of their own.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_failover.broker.select import BrokerHandle, broker_from_env
from agent_failover.errors import KafkaContainerUnavailable


@pytest.fixture(scope="session")
def broker() -> Iterator[BrokerHandle]:
    """The broker every broker test of this session uses."""
    log_dir = Path(tempfile.mkdtemp(prefix="agent-failover-tests-"))
    try:
        with broker_from_env(log_dir=log_dir) as handle:
            yield handle
    except KafkaContainerUnavailable as exc:
        pytest.skip(str(exc))
