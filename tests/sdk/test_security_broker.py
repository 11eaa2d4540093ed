"""SASL (PLAIN, SCRAM) and TLS (mutual too) reach every client of the SDK and the command line:
accepted with the right settings, refused with a clear error naming the setting (never its
value) otherwise. The broker is Tansu behind the tests' relay (tests/secured_broker.py: Tansu
0.6.0 cannot check a password nor serve TLS itself), and Tansu's own ``--authentication``."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_failover.config import AgentConfig, KafkaConfig, Topics
from agent_failover.dev.waiting import eventually
from agent_failover.errors import BrokerUnreachable
from agent_failover.models import Task
from agent_failover.sdk import Agent, TaskContext, TaskSubmitter
from agent_failover.sdk.kafka import ConfirmingProducer, producer_conf, wait_delivered
from agent_failover.topics import ensure_topics
from tests.secured_broker import Certificates, Relay, make_certificates, relayed_tansu, tansu

from .conftest import DEADLINE_S, new_work

pytestmark = pytest.mark.broker

USER, PASSWORD = "agent-7", "pa55-w0rd-of-agent-7"
SIGNING_KEY = "signing-key-never-to-be-seen-0123"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("secured")


@pytest.fixture(scope="module")
def certs(workdir: Path) -> Certificates:
    return make_certificates(workdir)


@pytest.fixture(scope="module")
def sasl_broker(workdir: Path) -> Iterator[Relay]:
    """SASL over plain TCP: PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512."""
    with relayed_tansu(workdir, users={USER: PASSWORD}) as relay:
        yield relay


@pytest.fixture(scope="module")
def tls_broker(workdir: Path, certs: Certificates) -> Iterator[Relay]:
    """SASL over TLS, and only for clients with a certificate of the test CA (mutual TLS)."""
    with relayed_tansu(
        workdir, certs=certs, require_client_cert=True, users={USER: PASSWORD}
    ) as relay:
        yield relay


def sasl(bootstrap: str, mechanism: str = "SCRAM-SHA-512", **changes: Any) -> KafkaConfig:
    settings: dict[str, Any] = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_username": USER,
        "sasl_password": PASSWORD,
        "signing_key": SIGNING_KEY,
        "connect_timeout": 3.0,
        **changes,
    }
    return KafkaConfig(bootstrap, **settings)


def mutual_tls(bootstrap: str, certs: Certificates, **changes: Any) -> KafkaConfig:
    tls = {
        "security_protocol": "SASL_SSL",
        "ssl_ca_location": str(certs.ca),
        "ssl_certificate_location": str(certs.client_cert),
        "ssl_key_location": str(certs.client_key),
        "ssl_key_password": certs.key_password,
    }
    return sasl(bootstrap, **{**tls, **changes})


def dispatch(kafka: KafkaConfig, topics: Topics, agent: Agent, task: Task) -> None:
    """Place ``task`` on ``agent`` as the monitor's intake does, over the same secured
    connection, signed with the fleet's key."""
    producer = ConfirmingProducer(
        producer_conf(kafka, "sec-test-monitor"), name="sec-test-monitor", signer=kafka.signer
    )
    producer.start()
    try:
        rd = new_work(agent, task)
        wait_delivered(producer.send(topics.priority, agent.agent_id, rd.encode()), "dispatch")
    finally:
        producer.close(DEADLINE_S)


def a_task_runs(kafka: KafkaConfig) -> None:
    """Topics created, a task submitted, an agent given it and running it: every SDK client
    (admin, producers, assigned consumers) has spoken to the broker."""
    topics = Topics(prefix=f"sec-{uuid.uuid4().hex[:8]}.", agent_partitions=2)
    ensure_topics(kafka, topics)
    ran = threading.Event()

    def handler(ctx: TaskContext) -> None:
        ctx.checkpoint(0, None)
        ran.set()

    config = AgentConfig(
        kafka=kafka,
        agent_id=f"agent-{uuid.uuid4().hex[:6]}",
        topics=topics,
        heartbeat_interval=0.2,
        fetch_wait_max_ms=10,
    )
    task = Task(task_id="t-1", task_type="test")
    with Agent(config, handler) as agent, TaskSubmitter(kafka, topics) as submitter:
        submitter.submit(task)
        dispatch(kafka, topics, agent, task)
        eventually(ran.is_set, DEADLINE_S, "the task to run")


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_reaches_every_sdk_client(sasl_broker: Relay, mechanism: str) -> None:
    a_task_runs(sasl(sasl_broker.bootstrap, mechanism))


def test_mutual_tls_with_an_encrypted_key_reaches_every_sdk_client_and_logs_no_secret(
    tls_broker: Relay, certs: Certificates, caplog: pytest.LogCaptureFixture
) -> None:
    # An application embedding the SDK keeps its own logging: nothing is masked for it.
    with caplog.at_level(logging.DEBUG):
        a_task_runs(mutual_tls(tls_broker.bootstrap, certs))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "agent-" in logged and "started" in logged  # the agent's own lines are there
    for secret in (PASSWORD, SIGNING_KEY, certs.key_password):
        assert secret not in logged


def refusal(kafka: KafkaConfig) -> str:
    with pytest.raises(BrokerUnreachable) as err:
        Agent(AgentConfig(kafka=kafka, agent_id="refused"), lambda ctx: None).start()
    message = str(err.value)
    for secret in (PASSWORD, SIGNING_KEY, "client-key-passphrase", "wrong-" + PASSWORD):
        assert secret not in message
    return message


def test_a_wrong_password_is_refused_naming_the_settings(sasl_broker: Relay) -> None:
    for mechanism in ("PLAIN", "SCRAM-SHA-512"):
        wrong = sasl(sasl_broker.bootstrap, mechanism, sasl_password="wrong-" + PASSWORD)
        message = refusal(wrong)
        assert "AGENT_FAILOVER_KAFKA_SASL_PASSWORD" in message, message
        assert "uthentication" in message, message


def test_the_development_brokers_own_authentication_refuses_and_says_which_settings(
    workdir: Path,
) -> None:
    """Tansu 0.6.0 with --authentication: SCRAM only, and no user can exist (docs/tansu.md), so
    every client is refused, by the broker itself this time."""
    with tansu(workdir, authentication=True) as port:
        scram = refusal(sasl(f"127.0.0.1:{port}"))
        plain = refusal(sasl(f"127.0.0.1:{port}", "PLAIN"))
    assert "AGENT_FAILOVER_KAFKA_SASL_PASSWORD" in scram and "unknown-user" in scram, scram
    assert "PLAIN mechanism handshake failed" in plain, plain


def test_tls_without_a_client_certificate_or_with_another_ca_is_refused(
    tls_broker: Relay, certs: Certificates
) -> None:
    bootstrap = tls_broker.bootstrap
    no_certificate = mutual_tls(
        bootstrap, certs, ssl_certificate_location=None, ssl_key_location=None
    )
    other_ca = mutual_tls(bootstrap, certs, ssl_ca_location=str(certs.client_cert))
    for kafka in (no_certificate, other_ca):
        message = refusal(kafka)
        assert "AGENT_FAILOVER_KAFKA_SSL_CA_LOCATION" in message, message


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_FAILOVER_")}
    return subprocess.run(
        [sys.executable, "-m", "agent_failover.cli", "--log-level", "DEBUG", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
    )


def cli_env(bootstrap: str, password: str = PASSWORD) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "AGENT_FAILOVER_TOPIC_PREFIX": f"cli-{uuid.uuid4().hex[:8]}.",
        "AGENT_FAILOVER_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "AGENT_FAILOVER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "AGENT_FAILOVER_KAFKA_SASL_USERNAME": USER,
        "AGENT_FAILOVER_KAFKA_SASL_PASSWORD": password,
        "AGENT_FAILOVER_SIGNING_KEY": SIGNING_KEY,
        "AGENT_FAILOVER_CONNECT_TIMEOUT": "3",
    }


def test_the_command_line_authenticates_and_never_shows_a_secret(sasl_broker: Relay) -> None:
    env = cli_env(sasl_broker.bootstrap)
    created = cli(env, "topics")
    submitted = cli(env, "submit", "--type", "demo", "--payload", '{"n": 1}')
    refused = cli({**env, "AGENT_FAILOVER_KAFKA_SASL_PASSWORD": "wrong-" + PASSWORD}, "topics")
    helped = cli(env, "submit", "--help")
    assert (created.returncode, submitted.returncode) == (0, 0), created.stderr + submitted.stderr
    assert "partition" in submitted.stdout
    assert refused.returncode == 3
    (line,) = refused.stderr.strip().splitlines()[-1:]
    assert line.startswith("agent-failover: error: cannot connect") and "SASL_PASSWORD" in line
    for run in (created, submitted, refused, helped):
        for secret in (PASSWORD, SIGNING_KEY):
            assert secret not in run.stdout + run.stderr
