"""librdkafka settings for the SDK's clients, the start-up probe, error wrapping, and a producer
that confirms writes.

Every client the SDK builds comes from here, so the settings the protocol depends on (idempotence,
``acks=all``, the Java-compatible partitioner, no topic auto-creation) are set in one place and
cannot be overridden by ``KafkaConfig.extra``; their log lines go through Python logging, rate
limited (:func:`agent_failover.logs.kafka_log_settings`). Configuration dicts hold the password:
never log them.

:func:`check_broker` is the first thing a client does: one bounded metadata request that fails
within ``KafkaConfig.connect_timeout`` naming the address (instead of librdkafka retrying for
half a minute), and names missing topics before anything is written to them.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import re
import threading
from collections.abc import Callable, Collection
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, ClusterMetadata  # type: ignore[attr-defined]

from agent_failover.config import BOOTSTRAP_ENV, AgentConfig, KafkaConfig, Topics
from agent_failover.errors import (
    BrokerError,
    BrokerUnreachable,
    ConfigError,
    LifecycleError,
    TopicSetupError,
)
from agent_failover.logs import DemotedLogger, kafka_log_settings
from agent_failover.signing import Signer

log = logging.getLogger(__name__)

#: How long librdkafka keeps retrying a write before it reports failure (submitters).
DELIVERY_TIMEOUT_MS = 30_000
#: How long a caller waits for a confirmation: a little past librdkafka's own deadline, so the
#: delivery report (with its real error) normally arrives first.
DELIVERY_WAIT_S = DELIVERY_TIMEOUT_MS / 1000 + 5
#: An agent's writes never time out (librdkafka's 0: no limit): through a broker outage the
#: idempotent producer retries with backoff and keeps every partition's order, so a checkpoint
#: pauses its task instead of failing it. Errors that retrying cannot cure still fail at once.
AGENT_DELIVERY_TIMEOUT_MS = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Delivered:
    """Where the broker stored a record."""

    topic: str
    partition: int
    offset: int


DeliveryFuture = concurrent.futures.Future[Delivered]


def producer_conf(
    kafka: KafkaConfig, client_id: str, delivery_timeout_ms: int = DELIVERY_TIMEOUT_MS
) -> dict[str, Any]:
    """Idempotent, ``acks=all`` producer with Kafka's default (Java) partitioner; a write is
    retried for ``delivery_timeout_ms`` (0: until it succeeds or fails for good)."""
    soft = {"linger.ms": 2, "client.id": client_id, **kafka_log_settings("producer")}
    required = {
        "enable.idempotence": True,
        "acks": "all",
        # Co-partitions agent-keyed topics with the faust monitor (Java murmur2); also keeps a
        # task's checkpoints on one partition whatever client wrote them.
        "partitioner": "murmur2_random",
        "message.timeout.ms": delivery_timeout_ms,
        # A topic the broker creates on first write gets the broker's partition count, which
        # silently breaks co-partitioning, and nobody reads it: writes to a missing topic fail.
        "allow.auto.create.topics": False,
    }
    return {**soft, **kafka.as_librdkafka_dict(), **required}


#: Fetch wait of the latency-critical consumers on a broker that wakes a waiting fetch.
DEFAULT_FETCH_WAIT_MS = 500
#: ... and on one that does not (Tansu): the wait is the latency, so keep it short.
TANSU_FETCH_WAIT_MS = 10


def resolve_fetch_wait(config: AgentConfig) -> int:
    """``config.fetch_wait_max_ms``, or the default for the broker found (one metadata request)."""
    if config.fetch_wait_max_ms is not None:
        return config.fetch_wait_max_ms
    return default_fetch_wait(config.kafka)


def default_fetch_wait(kafka: KafkaConfig) -> int:
    """The fetch wait for the broker at ``kafka`` (one metadata request, cached)."""
    from agent_failover.broker.compat import is_tansu

    return TANSU_FETCH_WAIT_MS if is_tansu(kafka) else DEFAULT_FETCH_WAIT_MS


def assigned_consumer_conf(
    kafka: KafkaConfig, client_id: str, fetch_wait_ms: int
) -> dict[str, Any]:
    """A consumer used with ``assign()`` only: it never joins a group nor commits.

    librdkafka insists on a ``group.id`` even then; it is only a name here.
    """
    required = {
        "group.id": f"{client_id}.unused",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        # Brokers that do not wake a waiting fetch (Tansu) need a short wait for low latency.
        "fetch.wait.max.ms": fetch_wait_ms,
        "enable.partition.eof": False,
    }
    soft = {"client.id": client_id, **kafka_log_settings("consumer")}
    return {**soft, **kafka.as_librdkafka_dict(), **required}


# "host:port/bootstrap: " before, and " (after 0ms in state CONNECT)" after librdkafka's reason.
_REASON = re.compile(r"^\S+/(?:bootstrap|\d+): |\s*\(after \d+ms in state \w+\)$")


def cluster_metadata(kafka: KafkaConfig, timeout: float | None = None) -> ClusterMetadata:
    """One metadata request, bounded by ``timeout`` (default ``kafka.connect_timeout``).

    Raises :class:`BrokerUnreachable` naming the address and librdkafka's last reason (refused,
    unknown host, TLS or SASL failure), :class:`ConfigError` if librdkafka rejects the settings.
    Never creates a topic.
    """
    timeout = kafka.connect_timeout if timeout is None else timeout
    errors: list[KafkaError] = []
    conf = {
        **kafka.as_librdkafka_dict(),
        # The failure is reported once, as the error below: the reconnect lines only at DEBUG.
        "logger": DemotedLogger(logging.getLogger("agent_failover.librdkafka.probe"), {}),
        "error_cb": errors.append,
        "allow.auto.create.topics": False,
    }
    try:
        admin = AdminClient(conf)
    except KafkaException as exc:
        raise ConfigError(f"the Kafka client settings are not valid: {exc.args[0].str()}") from exc
    try:
        metadata: ClusterMetadata = admin.list_topics(timeout=timeout)
        return metadata
    except KafkaException as exc:
        admin.poll(0)  # serves the error events (and log lines) queued during the wait
        reasons = [e.str() for e in errors if e.code() != KafkaError._ALL_BROKERS_DOWN]
        reason = _REASON.sub("", reasons[-1]) if reasons else exc.args[0].str()
        raise BrokerUnreachable(
            f"cannot connect to {kafka.bootstrap_servers} ({BOOTSTRAP_ENV}) "
            f"within {timeout:g} s: {reason}{_settings_to_check(reason)}"
        ) from exc


def _settings_to_check(reason: str) -> str:
    """The settings behind a refusal librdkafka reports (it names no setting, and never a
    secret): authentication, or TLS."""
    if "SASL" in reason or "uthenticat" in reason:
        return (
            " (check AGENT_FAILOVER_KAFKA_SASL_MECHANISM, AGENT_FAILOVER_KAFKA_SASL_USERNAME "
            "and AGENT_FAILOVER_KAFKA_SASL_PASSWORD)"
        )
    if any(word in reason for word in ("SSL", "TLS", "certificate", "security.protocol")):
        return (
            " (check AGENT_FAILOVER_KAFKA_SECURITY_PROTOCOL, AGENT_FAILOVER_KAFKA_SSL_CA_LOCATION, "
            "and for mutual TLS AGENT_FAILOVER_KAFKA_SSL_CERTIFICATE_LOCATION, "
            "AGENT_FAILOVER_KAFKA_SSL_KEY_LOCATION and AGENT_FAILOVER_KAFKA_SSL_KEY_PASSWORD)"
        )
    return ""


def agent_topics(topics: Topics) -> list[str]:
    """The topics an agent reads or writes (not ``tasks``: the monitor places new work)."""
    return [
        topics.heartbeats,
        topics.task_events,
        topics.control,
        topics.priority,
        topics.checkpoints,
        topics.dead_letter,
    ]


def check_broker(
    kafka: KafkaConfig,
    topics: Topics | None = None,
    *,
    need: Collection[str] | None = None,
    timeout: float | None = None,
) -> None:
    """Fail fast and clearly: the broker answers, and the topics in ``need`` (default: an
    agent's, :func:`agent_topics`) exist with the configured partition counts.

    Raises :class:`BrokerUnreachable` or :class:`TopicSetupError` (whose message says to run
    ``agent-failover topics``). With ``topics`` None only the broker is checked.
    """
    metadata = cluster_metadata(kafka, timeout)
    if topics is None:
        return
    from agent_failover.topics import check_partitions, topic_specs  # topics builds on this

    wanted = set(agent_topics(topics) if need is None else need)
    specs = [s for s in topic_specs(topics) if s.name in wanted]
    missing = check_partitions(metadata.topics, specs)
    if missing:
        raise TopicSetupError(
            f"topic{'s' if len(missing) > 1 else ''} {', '.join(missing)} missing on "
            f"{kafka.bootstrap_servers}: create the topic set with `agent-failover topics` "
            f"(prefix {topics.prefix!r}, AGENT_FAILOVER_TOPIC_PREFIX)"
        )


def broker_error(what: str, exc: BaseException) -> BrokerError:
    """Wrap a confluent-kafka failure; keeps librdkafka's own retriable flag when it has one."""
    err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else exc
    if isinstance(err, KafkaError):
        return BrokerError(f"{what}: {err.str()}", retryable=err.retriable())
    return BrokerError(f"{what}: {exc}")


class ConfirmingProducer:
    """A confluent-kafka producer whose ``send()`` returns a future resolved by the broker's ack.

    A background thread serves delivery reports (``poll``), so callers never poll themselves and
    ``send()`` never blocks. Every record is signed with ``signer`` (nothing is, without a key).
    ``on_fatal`` is told (from that thread) when librdkafka reports a fatal error: the producer
    then writes nothing more, and whoever owns it must stop. Thread-safe.
    """

    def __init__(
        self,
        conf: dict[str, Any],
        *,
        name: str,
        signer: Signer,
        on_fatal: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._conf = conf
        self._on_fatal = on_fatal
        self._name = name
        self._signer = signer
        self._producer: Producer | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Create the librdkafka client (it connects in the background) and the poll thread."""
        if self._producer is not None:
            return
        conf = self._conf
        if self._on_fatal is not None:
            conf = {**conf, "error_cb": self._on_error}
        try:
            self._producer = Producer(conf)
        except KafkaException as exc:
            raise broker_error("cannot create producer", exc) from exc
        self._thread = threading.Thread(
            target=self._poll_loop, name=f"{self._name}-delivery", daemon=True
        )
        self._thread.start()

    def _on_error(self, err: KafkaError) -> None:
        # Connection trouble arrives here too; librdkafka retries it (and logs it, rate limited).
        if err.fatal() and self._on_fatal is not None:
            self._on_fatal(BrokerError(f"{self._name}: the producer failed for good: {err.str()}"))

    def _poll_loop(self) -> None:
        assert self._producer is not None
        while not self._stop.is_set():
            self._producer.poll(0.05)

    def send(self, topic: str, key: str | bytes, value: bytes) -> DeliveryFuture:
        """Queue one record; the future gets its partition and offset, or a :class:`BrokerError`.

        Raises :class:`BrokerError` at once if librdkafka's queue is full.
        """
        if self._producer is None or self._stop.is_set():
            raise LifecycleError("producer is not running")
        future: DeliveryFuture = concurrent.futures.Future()

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                future.set_exception(
                    BrokerError(f"write to {topic} failed: {err.str()}", retryable=err.retriable())
                )
            else:
                future.set_result(Delivered(topic, msg.partition() or 0, msg.offset() or 0))

        try:
            self._producer.produce(
                topic,
                value=value,
                key=key,
                headers=self._signer.headers(topic, key, value),
                on_delivery=on_delivery,
            )
        except BufferError as exc:
            raise BrokerError(f"write to {topic} refused: local queue full") from exc
        except KafkaException as exc:
            raise broker_error(f"write to {topic} refused", exc) from exc
        return future

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for queued records; returns how many are still queued."""
        if self._producer is None:
            return 0
        return int(self._producer.flush(timeout))

    def close(self, timeout: float) -> None:
        """Flush (bounded by ``timeout``) and stop the poll thread."""
        if self._producer is None:
            return
        left = self.flush(timeout)
        if left:
            log.warning("%s: %d records not confirmed at close", self._name, left)
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._producer = None


def wait_delivered(
    future: DeliveryFuture, what: str, timeout: float = DELIVERY_WAIT_S
) -> Delivered:
    """Block until ``future`` resolves; a missing report past ``timeout`` is a BrokerError."""
    try:
        return future.result(timeout=timeout)
    except concurrent.futures.TimeoutError as exc:
        raise BrokerError(f"{what}: no acknowledgement within {timeout:g} s") from exc
