"""The dead letters agents write are counted by a live monitor: once each, by source ``agent``,
topic and reason; the monitor's own letters and whatever else lies on the dead-letter topic are
not counted again, and nothing there stops it.

Before, agents wrote no dead letters and the monitor counted none: ``source="agent"`` stayed 0.
"""

from __future__ import annotations

import time

import pytest

from agent_failover import models as m
from agent_failover.errors import Refusal
from tests.streams.conftest import MonitorHarness
from tests.streams.test_metrics_broker import get, sample, scrape

pytestmark = [pytest.mark.broker, pytest.mark.slow]

TIMEOUT = 60.0


def letter(h: MonitorHarness, source: str, refusal: Refusal, offset: int) -> m.DeadLetter:
    return m.dead_letter(
        topic=h.topics.control,
        partition=0,
        offset=offset,
        key=b"agent-a",
        value=b"{not json",
        reason="not JSON",
        at=time.time(),
        refusal=refusal,
        source=m.Source(source),
        agent_id="agent-a" if source == "agent" else None,
    )


def test_a_live_monitor_counts_the_agents_dead_letters_once(
    monitor_harness: MonitorHarness,
) -> None:
    h = monitor_harness
    h.start_monitor()
    base = h.eventually(h.http_base, TIMEOUT, "the log naming the endpoints' address")
    h.eventually(lambda: get(f"{base}/readyz")[0] == 200, TIMEOUT, "/readyz answering 200")
    topic = h.topics.dead_letter
    h.send(topic, "agent-a", letter(h, "agent", Refusal.NOT_JSON, 1))
    h.send(topic, "agent-a", b"{not a dead letter")  # read, not counted, nothing stops
    h.send(topic, "agent-a", letter(h, "monitor", Refusal.NOT_JSON, 2))  # counted by its writer
    h.send(topic, "agent-a", letter(h, "agent", Refusal.BAD_SIGNATURE, 3))
    name = "agent_failover_dead_letters_total"

    def counted() -> tuple[float | None, float | None] | None:
        _, now = scrape(base)
        found = (
            sample(now, name, topic="control", reason="not_json", source="agent"),
            sample(now, name, topic="control", reason="bad_signature", source="agent"),
        )
        return found if found == (1.0, 1.0) else None

    h.eventually(counted, TIMEOUT, "both agent dead letters counted")
    _, now = scrape(base)
    assert sample(now, name, topic="control", reason="not_json", source="monitor") == 0
    assert h.proc is not None and h.proc.alive
