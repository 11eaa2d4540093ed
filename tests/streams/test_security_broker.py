"""The monitor over SASL and mutual TLS: its faust consumer and producer, its heartbeat thread
and its admin clients all authenticate (accepted), a wrong password stops it at start with one
line naming the setting (refused), and no secret reaches its log at DEBUG, nor /metrics.

The broker is Tansu behind the tests' relay (tests/secured_broker.py)."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer

from agent_failover.config import KafkaConfig, Topics
from agent_failover.dev.processes import Proc, spawn
from agent_failover.dev.reading import TopicReader
from agent_failover.dev.waiting import eventually
from agent_failover.topics import ensure_topics
from tests.secured_broker import Certificates, Relay, make_certificates, relayed_tansu

pytestmark = [pytest.mark.broker, pytest.mark.slow]

TIMEOUT = 60.0
USER, PASSWORD = "monitor-1", "pa55-w0rd-of-the-monitor"
SIGNING_KEY = "signing-key-never-to-be-seen-0123"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, certs: Certificates) -> Iterator[Relay]:
    """SASL over mutual TLS."""
    with relayed_tansu(
        tmp_path_factory.mktemp("broker"),
        certs=certs,
        require_client_cert=True,
        users={USER: PASSWORD},
    ) as relay:
        yield relay


def settings(broker: Relay, certs: Certificates, topics: Topics) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "AGENT_FAILOVER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "AGENT_FAILOVER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "AGENT_FAILOVER_KAFKA_SASL_USERNAME": USER,
        "AGENT_FAILOVER_KAFKA_SASL_PASSWORD": PASSWORD,
        "AGENT_FAILOVER_KAFKA_SSL_CA_LOCATION": str(certs.ca),
        "AGENT_FAILOVER_KAFKA_SSL_CERTIFICATE_LOCATION": str(certs.client_cert),
        "AGENT_FAILOVER_KAFKA_SSL_KEY_LOCATION": str(certs.client_key),
        "AGENT_FAILOVER_KAFKA_SSL_KEY_PASSWORD": certs.key_password,
        "AGENT_FAILOVER_SIGNING_KEY": SIGNING_KEY,
        "AGENT_FAILOVER_TOPIC_PREFIX": topics.prefix,
        "AGENT_FAILOVER_AGENT_PARTITIONS": str(topics.agent_partitions),
        "AGENT_FAILOVER_CONNECT_TIMEOUT": "5",
    }


def kafka(broker: Relay, certs: Certificates) -> KafkaConfig:
    return KafkaConfig(
        broker.bootstrap,
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=USER,
        sasl_password=PASSWORD,
        ssl_ca_location=str(certs.ca),
        ssl_certificate_location=str(certs.client_cert),
        ssl_key_location=str(certs.client_key),
        ssl_key_password=certs.key_password,
        signing_key=SIGNING_KEY,
    )


def monitor(tmp_path: Path, env: dict[str, str]) -> Proc:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_FAILOVER_")}
    full = {
        **clean,
        **env,
        "AGENT_FAILOVER_MONITOR_APP_ID": f"afm-sec-{uuid.uuid4().hex[:6]}",
        "AGENT_FAILOVER_METRICS_HOST": "127.0.0.1",
        "AGENT_FAILOVER_METRICS_PORT": "0",
        "AGENT_FAILOVER_MONITOR_DATA_DIR": str(tmp_path / "data"),
    }
    args = ["-m", "agent_failover.cli", "--log-level", "DEBUG", "monitor"]
    return spawn("monitor", args, tmp_path / "monitor.log", env=full)


def test_a_monitor_works_over_sasl_and_mutual_tls_and_shows_no_secret(
    broker: Relay, certs: Certificates, tmp_path: Path
) -> None:
    topics = Topics(prefix=f"sec-{uuid.uuid4().hex[:8]}.", agent_partitions=2)
    secured = kafka(broker, certs)
    ensure_topics(secured, topics)
    proc = monitor(tmp_path, settings(broker, certs, topics))
    letters = TopicReader(secured, topics.dead_letter)
    try:

        def log() -> str:
            assert proc.alive, f"the monitor exited ({proc.returncode}):\n{proc.log_tail()}"
            return proc.log_path.read_text(errors="replace")

        def ready() -> bool:
            found = log().partition("metrics and probes on http://")[2].split()
            if not found:
                return False
            try:
                with urllib.request.urlopen(f"http://{found[0]}/readyz", timeout=5) as response:
                    return bool(response.status == 200)
            except urllib.error.HTTPError:  # 503 until ready
                return False

        eventually(ready, TIMEOUT, "/readyz (group joined, tables recovered, broker answering)")
        # A bad record, signed: read by faust's consumer, dead-lettered by its producer.
        producer = Producer({**secured.as_librdkafka_dict(), "partitioner": "murmur2_random"})
        value = b"{not json"
        headers = secured.signer.headers(topics.task_events, "agent-x", value)
        producer.produce(topics.task_events, value, b"agent-x", headers=headers)
        assert producer.flush(TIMEOUT) == 0
        eventually(lambda: letters.poll(0.2), TIMEOUT, "the dead letter, written by faust")
        address = log().partition("metrics and probes on http://")[2].split()[0]
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
            scraped = response.read().decode()
    finally:
        letters.close()
        proc.stop(20)
    text = proc.log_path.read_text(errors="replace")
    assert "DEBUG" in text and "Authenticated as" in text  # faust's client said so, at DEBUG
    for secret in (PASSWORD, SIGNING_KEY, certs.key_password):
        assert secret not in text and secret not in scraped


def test_a_monitor_with_a_wrong_password_stops_at_once_naming_the_setting(
    broker: Relay, certs: Certificates, tmp_path: Path
) -> None:
    topics = Topics(prefix=f"sec-{uuid.uuid4().hex[:8]}.", agent_partitions=2)
    wrong = {**settings(broker, certs, topics), "AGENT_FAILOVER_KAFKA_SASL_PASSWORD": "nope-1234"}
    proc = monitor(tmp_path, wrong)
    assert proc.wait(TIMEOUT) == 3, proc.log_tail()
    last = proc.log_tail(1)
    assert last.startswith("agent-failover: error: cannot connect"), last
    assert "AGENT_FAILOVER_KAFKA_SASL_PASSWORD" in last
    text = proc.log_path.read_text(errors="replace")
    for secret in ("nope-1234", SIGNING_KEY, certs.key_password):
        assert secret not in text
