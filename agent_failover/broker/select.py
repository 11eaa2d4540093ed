"""Choose the broker for the CLI, the demo and the tests, from the environment.

1. ``KAFKA_BOOTSTRAP_SERVERS`` set: that broker (``kind="external"``); whether it is Tansu is
   asked of the broker itself (:func:`agent_failover.broker.compat.is_tansu`).
2. ``AGENT_FAILOVER_TEST_BROKER=testcontainers``: an Apache Kafka container started with
   testcontainers. Without a reachable Docker engine this raises
   :class:`~agent_failover.errors.KafkaContainerUnavailable` (tests turn it into a skip).
3. Otherwise: the embedded Tansu broker (:class:`EmbeddedBroker`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from agent_failover.broker.compat import is_tansu
from agent_failover.broker.embedded import EmbeddedBroker
from agent_failover.errors import BrokerError, ConfigError, KafkaContainerUnavailable

TEST_BROKER_ENV = "AGENT_FAILOVER_TEST_BROKER"
KAFKA_IMAGE_ENV = "AGENT_FAILOVER_KAFKA_IMAGE"
DEFAULT_KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"

BrokerKind = Literal["external", "testcontainers", "embedded"]


@dataclasses.dataclass(frozen=True)
class BrokerHandle:
    """A broker to use: where it is, what started it, and whether it is Tansu."""

    bootstrap_servers: str
    kind: BrokerKind
    is_tansu: bool


def docker_unavailable_reason(timeout: float = 2.0) -> str | None:
    """Why no Docker engine can be used, or None if one answers a ping within ``timeout``."""
    try:
        import docker  # type: ignore[import-untyped]
    except ImportError:
        return "the docker package is not installed (pip install 'agent-failover[dev]')"
    try:
        client = docker.from_env(timeout=max(1, round(timeout)))
    except Exception as exc:  # docker raises DockerException or plain OS errors, by version
        return f"no Docker engine reachable: {exc}"
    try:
        client.ping()
    except Exception as exc:
        return f"the Docker engine does not answer: {exc}"
    finally:
        client.close()
    return None


@contextmanager
def broker_from_env(
    log_dir: Path | None = None, env: Mapping[str, str] | None = None
) -> Iterator[BrokerHandle]:
    """Yield the broker the environment asks for; stop it afterwards if this started it.

    ``log_dir``: where the embedded broker writes ``tansu.log`` (default: a temp directory).
    Raises :class:`KafkaContainerUnavailable` if a Kafka container was asked for but cannot run
    here, :class:`BrokerError` if it fails to start, :class:`EmbeddedBrokerError` if the embedded
    broker fails to start, :class:`ConfigError` if ``AGENT_FAILOVER_TEST_BROKER`` names no broker.
    """
    env = os.environ if env is None else env
    external = env.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if external:
        yield BrokerHandle(external, "external", is_tansu(external))
        return
    wanted = env.get(TEST_BROKER_ENV, "").strip().lower()
    if wanted == "testcontainers":
        with _kafka_container(env.get(KAFKA_IMAGE_ENV) or DEFAULT_KAFKA_IMAGE) as bootstrap:
            yield BrokerHandle(bootstrap, "testcontainers", is_tansu(bootstrap))
        return
    if wanted not in ("", "embedded", "tansu"):
        # A typo must fail the run, not skip every broker test.
        raise ConfigError(
            f"{TEST_BROKER_ENV}={wanted!r}: use 'testcontainers' or 'embedded' "
            "(or set KAFKA_BOOTSTRAP_SERVERS)"
        )
    log_path = log_dir / "tansu.log" if log_dir is not None else None
    with EmbeddedBroker(log_path=log_path) as broker:
        yield BrokerHandle(broker.bootstrap_servers, "embedded", True)


@contextmanager
def _kafka_container(image: str) -> Iterator[str]:
    reason = docker_unavailable_reason()
    if reason is not None:
        raise KafkaContainerUnavailable(f"{TEST_BROKER_ENV}=testcontainers: {reason}")
    try:
        from testcontainers.community.kafka import KafkaContainer
    except ImportError:  # older testcontainers: the pre-"community" module
        try:
            from testcontainers.kafka import KafkaContainer
        except ImportError as exc:
            raise KafkaContainerUnavailable(
                "testcontainers[kafka] is not installed (pip install 'agent-failover[dev]')"
            ) from exc
    container: Any = KafkaContainer(image)
    try:
        container.start()
    except Exception as exc:
        raise BrokerError(f"cannot start the Kafka container {image}: {exc}") from exc
    try:
        yield str(container.get_bootstrap_server())
    finally:
        container.stop()
