"""The HTTP endpoints on a loopback port: /metrics, /healthz, /readyz, and 404 elsewhere."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from agent_failover.streams.http import HttpServer, make_app
from agent_failover.streams.metrics import MonitorMetrics
from agent_failover.streams.probes import Probes


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def served() -> Iterator[tuple[str, Probes, Clock]]:
    clock = Clock()
    probes = Probes(clock)
    server = HttpServer("127.0.0.1", 0, make_app(MonitorMetrics().registry, probes))
    server.start()
    host, port = server.address
    try:
        yield f"http://{host}:{port}", probes, clock
    finally:
        server.stop()


def get(url: str, method: str = "GET") -> tuple[int, str, str]:
    """Status, content type and body of a request (error statuses included)."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_metrics_in_the_prometheus_text_format(served: tuple[str, Probes, Clock]) -> None:
    base, _, _ = served
    status, content_type, body = get(f"{base}/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=")
    assert "# TYPE agent_failover_failovers_total counter" in body


def test_the_probes_answer_200_or_503_with_their_reason(
    served: tuple[str, Probes, Clock],
) -> None:
    base, probes, clock = served
    assert get(f"{base}/healthz")[0] == 200
    assert get(f"{base}/readyz")[::2] == (503, "broker unreachable: no answer yet\n")
    probes.broker_answered(clock.now)
    probes.tick(clock.now, None, 2)
    assert get(f"{base}/readyz")[::2] == (200, "ready: 2 agent partition(s) owned\n")
    assert get(f"{base}/readyz", "HEAD")[::2] == (200, "")
    clock.now += 60
    assert get(f"{base}/healthz")[0] == 503
    assert get(f"{base}/readyz")[0] == 503


def test_any_other_path_or_method_is_refused(served: tuple[str, Probes, Clock]) -> None:
    base, _, _ = served
    for path in ("/", "/metrics/x", "/health", "/readyz/"):
        assert get(f"{base}{path}")[0] == 404, path
    assert get(f"{base}/readyz", "POST")[0] == 405


def test_the_server_reports_the_port_it_bound_and_stops() -> None:
    server = HttpServer("127.0.0.1", 0, make_app(MonitorMetrics().registry, Probes()))
    host, port = server.address
    assert host == "127.0.0.1" and port > 0
    server.start()
    server.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
    HttpServer("127.0.0.1", 0, make_app(MonitorMetrics().registry, Probes())).stop()  # unstarted
