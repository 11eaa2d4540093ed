"""A live monitor's endpoints: probes and 404s, and metrics that move after a kill; the scrape
passes ``promtool check metrics`` where promtool is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent_failover import models as m
from tests.streams.conftest import Fleet, MonitorHarness, claimed_and_checkpointed

pytestmark = [pytest.mark.broker, pytest.mark.slow]

TIMEOUT = 60.0  # generous deadlines: a loaded 2-core box is slow, never wrong

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(base: str) -> tuple[str, Samples]:
    status, text = get(f"{base}/metrics")
    assert status == 200
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return text, samples


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def bad_signatures(samples: Samples, *topics: str) -> dict[str, float | None]:
    """The monitor's dead letters of reason ``bad_signature``, by logical topic."""
    name = "agent_failover_dead_letters_total"
    return {
        topic: sample(samples, name, topic=topic, reason="bad_signature", source="monitor")
        for topic in topics
    }


def promtool() -> str | None:
    """promtool from PATH, else from the project's tool cache (where the tool installer puts it:
    ``$AGENT_FAILOVER_TOOLS_CACHE``, or ``${XDG_CACHE_HOME:-~/.cache}/agent-failover``)."""
    found = shutil.which("promtool")
    if found:
        return found
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    cache = Path(os.environ.get("AGENT_FAILOVER_TOOLS_CACHE") or Path(base) / "agent-failover")
    if not cache.is_dir():
        return None
    return next((str(p) for p in sorted(cache.rglob("promtool")) if os.access(p, os.X_OK)), None)


def test_a_live_monitor_serves_probes_and_metrics_that_move_after_a_kill(
    monitor_harness: MonitorHarness, fleet: Fleet
) -> None:
    h, t = monitor_harness, monitor_harness.topics
    fleet.start("agent-a", 101, 2, m.Pool.ACTIVE)
    fleet.start("agent-b", 202, 2, m.Pool.STANDBY)
    ref = claimed_and_checkpointed(h, "agent-a", 101, "t-1")

    h.start_monitor(AGENT_FAILOVER_HEARTBEAT_TIMEOUT="2", AGENT_FAILOVER_TICK_INTERVAL="0.05")
    base = h.eventually(h.http_base, TIMEOUT, "the log naming the endpoints' address")
    assert get(f"{base}/healthz")[0] == 200
    assert get(f"{base}/nowhere")[0] == 404
    assert get(f"{base}/")[0] == 404
    h.eventually(lambda: get(f"{base}/readyz")[0] == 200, TIMEOUT, "/readyz answering 200")
    assert get(f"{base}/readyz")[1].startswith("ready: 4 agent partition(s) owned")

    _, before = scrape(base)
    assert sample(before, "agent_failover_ready") == 1
    assert sample(before, "agent_failover_broker_up") == 1
    assert sample(before, "agent_failover_partitions_owned") == 4
    assert sample(before, "agent_failover_failovers_total", reason="heartbeat_timeout") == 0
    assert sample(before, "agent_failover_recovery_seconds_count") == 0
    labels = {"topic": "heartbeats", "reason": "not_json", "source": "monitor"}
    assert sample(before, "agent_failover_dead_letters_total", **labels) == 0

    h.send(t.heartbeats, "agent-x", b"{not json")  # heartbeats are read from the takeover on
    fleet.kill("agent-a")
    (rd,) = h.eventually(
        lambda: h.records(t.priority, m.Redispatch.decode), TIMEOUT, "the re-dispatch of t-1"
    )
    assert (rd.target_agent_id, rd.attempt, rd.checkpoint) == ("agent-b", 2, ref)
    assert rd.last_heartbeat_age_s is not None and rd.last_heartbeat_age_s >= 2.0
    # agent-b resumes the task, as the SDK would.
    resumed = m.TaskEvent(
        kind=m.EventKind.CLAIMED,
        agent_id="agent-b",
        epoch=202,
        at=time.time(),
        task_id="t-1",
        attempt=2,
        task=rd.task,
    )
    h.send(t.task_events, "agent-b", resumed)

    def moved() -> tuple[str, Samples] | None:
        text, now = scrape(base)
        wanted = (
            sample(now, "agent_failover_recovery_seconds_count") == 1
            and sample(now, "agent_failover_rpo_steps_count") == 1  # 5 s after the decision
            and sample(now, "agent_failover_agents", state="failed", pool="active") == 1
            and sample(now, "agent_failover_dead_letters_total", **labels) == 1
        )
        return (text, now) if wanted else None

    text, after = h.eventually(moved, TIMEOUT, "the failover's figures in the scrape")
    assert sample(after, "agent_failover_failovers_total", reason="heartbeat_timeout") == 1
    assert sample(after, "agent_failover_tasks_moved_total", reason="heartbeat_timeout") == 1
    assert sample(after, "agent_failover_detection_delay_seconds_count") == 1
    assert sample(after, "agent_failover_decision_apply_seconds_count") == 1
    assert sample(after, "agent_failover_rto_seconds_count") == 1
    rto, recovery = (
        sample(after, "agent_failover_rto_seconds_sum"),
        sample(after, "agent_failover_recovery_seconds_sum"),
    )
    assert rto is not None and recovery is not None and rto >= recovery + 2.0
    assert sample(after, "agent_failover_rpo_steps_sum") == 0  # resumed from its last step
    assert sample(after, "agent_failover_rpo_seconds_count") == 1
    assert sample(after, "agent_failover_agents", state="healthy", pool="standby") == 1
    for name in ("heartbeats_consumed_total", "heartbeat_arrival_lag_seconds_count"):
        value = sample(after, f"agent_failover_{name}")
        assert value is not None and value > 0, name
    task_events = {"topic": "task-events", "reason": "not_json", "source": "monitor"}
    assert sample(after, "agent_failover_dead_letters_total", **task_events) == 1
    assert "_created" not in text and "\nprocess_cpu_seconds_total " in text

    tool = promtool()
    if tool is None:
        pytest.skip(
            "promtool is not installed (Debian package prometheus): the scrape was not linted"
        )
    check = subprocess.run(
        [tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert (check.returncode, check.stdout, check.stderr) == (0, "", "")
