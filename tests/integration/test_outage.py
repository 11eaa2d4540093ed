"""A broker outage under a working fleet: nobody is fenced for heartbeats that could not
arrive, and every task completes exactly once after the broker is back.

The outage is real at the network level: every client (monitor, agents, submitter, observer)
reaches Tansu through the tests' relay (tests/secured_broker.py), which drops every connection
and refuses new ones while it is cut. The broker itself keeps its records, as a broker that
restarts with its disks would.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Scenario, build_scenario, stop_scenario
from tests.integration.test_failover import assert_exactly_once
from tests.secured_broker import Relay, relayed_tansu

pytestmark = [pytest.mark.broker, pytest.mark.slow]

AGENTS = ["agent-a", "agent-b"]
#: How long the broker is gone: five heartbeat timeouts of the scenario (2 s each).
OUTAGE = 10.0


@pytest.fixture
def relayed(tmp_path: Path) -> Iterator[tuple[Relay, Scenario]]:
    with relayed_tansu(tmp_path) as relay:
        scenario = build_scenario(relay.bootstrap, tmp_path)
        try:
            yield relay, scenario
        finally:
            relay.restore()
            stop_scenario(scenario)


def test_a_broker_outage_fences_nobody_and_every_task_completes_once(
    relayed: tuple[Relay, Scenario],
) -> None:
    relay, s = relayed
    s.cluster.start_monitor()
    s.start_agents(AGENTS)
    s.wait_monitor_ready()
    s.submit(4, steps=30)
    s.busy_agent(AGENTS, min_step=2)  # work in flight on the agents

    # The fault: the broker is gone for OUTAGE seconds (a timer ends it, as a fault schedule
    # would). Nothing can complete before it is back: outcomes are read from the broker.
    relay.cut()
    back = threading.Timer(OUTAGE, relay.restore)
    back.start()
    try:
        s.wait_all_completed(timeout=OUTAGE + 180)
    finally:
        back.cancel()
        relay.restore()
    s.observer.sync()
    assert s.observer.fences() == []
    assert_exactly_once(s)
    # The monitor saw the outage, and said so.
    assert "the broker has not answered" in s.cluster.procs["monitor"].log_tail(100_000)
