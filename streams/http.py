"""The worker's HTTP endpoints, on one address: ``/metrics``, ``/healthz`` and ``/readyz``.

``/metrics`` is prometheus-client's own WSGI app over the worker's registry; ``/healthz`` and
``/readyz`` answer 200 or 503 with one line saying why (:class:`~streams.probes.Probes`); any
other path is 404. A small threaded WSGI server from the standard library serves them from
daemon threads, as prometheus-client's ``start_http_server`` does.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from agent_failover.streams.probes import Probes, Verdict

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

PATHS = ("/metrics", "/healthz", "/readyz")


def _text(start_response: StartResponse, status: str, text: str, head: bool) -> list[bytes]:
    body = (text + "\n").encode()
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    start_response(status, headers)
    return [] if head else [body]


def make_app(registry: CollectorRegistry, probes: Probes) -> WsgiApp:
    """The WSGI app routing the three paths; everything else is 404."""
    metrics = make_wsgi_app(registry)
    checks: dict[str, Callable[[], Verdict]] = {"/healthz": probes.alive, "/readyz": probes.ready}

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/metrics":
            result: Iterable[bytes] = metrics(environ, start_response)
            return result
        check = checks.get(path)
        if check is None:
            return _text(start_response, "404 Not Found", f"try {', '.join(PATHS)}", False)
        if method not in ("GET", "HEAD"):
            return _text(start_response, "405 Method Not Allowed", "use GET", False)
        verdict = check()
        status = "200 OK" if verdict.ok else "503 Service Unavailable"
        return _text(start_response, status, verdict.reason, method == "HEAD")

    return app


class _Server(ThreadingMixIn, WSGIServer):
    """One thread per request; threads do not outlive the process."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """Probes arrive every few seconds: do not log each request."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class HttpServer:
    """Serves a WSGI app on ``host``:``port`` (0: any free port) from a daemon thread."""

    def __init__(self, host: str, port: int, app: WsgiApp) -> None:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        server_class = type("Server", (_Server,), {"address_family": family[0][0]})
        self._server: WSGIServer = make_server(host, port, app, server_class, _QuietHandler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="af-http", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        """The host and port the server is bound to (the real port when 0 was asked)."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Serve from a daemon thread."""
        self._thread.start()
        host, port = self.address
        log.info("metrics and probes on http://%s:%d (%s)", host, port, ", ".join(PATHS))

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread.is_alive():  # shutdown() waits for serve_forever(): only if it runs
            self._server.shutdown()
            self._thread.join(5.0)
        self._server.server_close()
