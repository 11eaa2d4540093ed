"""A real alerting pipeline on loopback for the live check: Prometheus (scraping given targets,
evaluating given rules) -> Alertmanager -> a webhook receiver thread that records what it gets.

Both servers are the binaries tools/install-ops-tools.sh unpacks, started with generated configs
on free 127.0.0.1 ports, waited for with a deadline (their /-/ready), and stopped on exit.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from agent_failover.broker.embedded import free_port
from agent_failover.dev.waiting import eventually


def http_get(url: str, timeout: float = 2.0) -> str | None:
    """The body of a 200 answer, else None (connection refused, 503, ...)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            body: bytes = answer.read()
            return body.decode()
    except urllib.error.HTTPError as exc:
        exc.close()  # a 503 while starting: its connection is ours to close
        return None
    except (OSError, urllib.error.URLError):
        return None


class WebhookReceiver:
    """Alertmanager's webhook target: every notification's JSON body, in arrival order."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.notifications.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test reports what it received; no access log on stderr

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/alerts"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert of every notification received so far."""
        with self._lock:
            return [a for n in self.notifications for a in n.get("alerts", [])]

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextlib.contextmanager
def _server(name: str, args: list[str], ready_url: str, workdir: Path) -> Iterator[None]:
    """Run a server binary until the block ends; fail with its log if it never gets ready."""
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        try:
            eventually(
                lambda: proc.poll() is not None or http_get(ready_url), 60, f"{name} to be ready"
            )
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited before it was ready")
        except (AssertionError, TimeoutError) as exc:
            tail = log_path.read_text()[-3000:]
            raise RuntimeError(f"{exc}; exit {proc.poll()}:\n{tail}") from None
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextlib.contextmanager
def alertmanager(binary: str, workdir: Path, webhook_url: str) -> Iterator[str]:
    """Alertmanager sending every alert at once to ``webhook_url``; yields its address."""
    port = free_port()
    config = {
        "route": {
            "receiver": "webhook",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [{"name": "webhook", "webhook_configs": [{"url": webhook_url}]}],
    }
    path = workdir / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    args = [
        binary,
        f"--config.file={path}",
        f"--storage.path={workdir / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # a single instance: no gossip port
    ]
    with _server("alertmanager", args, f"http://127.0.0.1:{port}/-/ready", workdir):
        yield f"127.0.0.1:{port}"


@contextlib.contextmanager
def prometheus(
    binary: str,
    workdir: Path,
    *,
    job: str,
    targets: list[str],
    target_labels: dict[str, str],
    rule_groups: list[dict[str, Any]],
    alertmanager_address: str,
) -> Iterator[str]:
    """Prometheus scraping ``targets`` as ``job`` every second with the rules loaded; yields
    its base URL."""
    port = free_port()
    rules = workdir / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": rule_groups}, sort_keys=False))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager_address]}]}]},
        "scrape_configs": [
            {
                "job_name": job,
                "static_configs": [{"targets": targets, "labels": target_labels}],
            }
        ],
    }
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    args = [
        binary,
        f"--config.file={path}",
        f"--storage.tsdb.path={workdir / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with _server("prometheus", args, f"http://127.0.0.1:{port}/-/ready", workdir):
        yield f"http://127.0.0.1:{port}"


def instant_query(base_url: str, expr: str) -> list[dict[str, Any]]:
    """The result vector of a PromQL instant query (empty when Prometheus does not answer)."""
    url = f"{base_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    body = http_get(url)
    if body is None:
        return []
    result: list[dict[str, Any]] = json.loads(body)["data"]["result"]
    return result


@contextlib.contextmanager
def pipeline(
    prometheus_bin: str,
    alertmanager_bin: str,
    workdir: Path,
    *,
    job: str,
    target: str,
    target_labels: dict[str, str],
    rule_groups: list[dict[str, Any]],
) -> Iterator[WebhookReceiver]:
    """The whole chain: Prometheus scraping ``target`` with the rules, Alertmanager, webhook."""
    with (
        WebhookReceiver() as webhook,
        alertmanager(alertmanager_bin, workdir, webhook.url) as am_address,
        prometheus(
            prometheus_bin,
            workdir,
            job=job,
            targets=[target],
            target_labels=target_labels,
            rule_groups=rule_groups,
            alertmanager_address=am_address,
        ),
    ):
        yield webhook
