"""The faust app of the monitor: ``create_app(config)`` wires the table, one agent and a timer.

The faust parts are thin: one agent consumes task-events, tasks.priority and control (raw bytes,
co-partitioned by agent id) and hands each record to :class:`~streams.monitor.Monitor`; one timer
runs detection every ``tick_interval``. Both pass the monitor's clock, ``time.monotonic()``.
Heartbeats bypass faust (:mod:`streams.liveness`). Beside them: ``/metrics``, ``/healthz`` and
``/readyz`` (:mod:`streams.http`), and a timer measuring the agent's consumer lag each second.

``faust -A streams.app worker --without-web`` works too: the module attribute ``app`` is built on
first access from the environment (:meth:`MonitorConfig.from_env`).
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Collection
from typing import Any, cast

import faust
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from agent_failover.broker import compat
from agent_failover.config import KafkaConfig, MonitorConfig
from agent_failover.errors import ConfigError
from agent_failover.signing import warn_if_unsigned
from streams.fleet import FleetDirectory
from streams.http import HttpServer, make_app
from streams.kafkastats import stats_handler
from streams.lag import ConsumerLag
from streams.liveness import FETCH_WAIT_MS, LivenessTracker
from streams.metrics import MonitorMetrics, logical_topic
from streams.monitor import Monitor, monitor_id
from streams.probes import Probes, not_ready
from streams.tables import agents_table

log = logging.getLogger(__name__)

#: How often faust's consumer heartbeats the monitor group: small, so a dead worker's partitions
#: move quickly (faust's default is 3 s).
BROKER_HEARTBEAT_INTERVAL = 0.5
#: Seconds between two measures of the faust agent's consumer lag.
LAG_INTERVAL = 1.0

#: The monitor group's session timeout unless configured. A dead worker's partitions move after
#: its session plus one rebalance. Apache Kafka refuses sessions below its brokers'
#: ``group.min.session.timeout.ms`` (6 s by default), so that is the default there; the
#: development broker has no minimum, and 2 s gives a takeover within 5 s on it
#: (docs/architecture.md, "Monitor takeover").
SESSION_TIMEOUT = 6.0
TANSU_SESSION_TIMEOUT = 2.0


def _compat(config: MonitorConfig) -> tuple[dict[str, Any], int]:
    """Tansu fixes and settings, when the broker is Tansu (no-op elsewhere), with the monitor
    group's session timeout for this broker; and the heartbeat consumer's fetch wait."""
    tansu = compat.faust_patches_for(config.kafka)
    settings: dict[str, Any] = compat.faust_settings_for(config.kafka)
    session = config.broker_session_timeout
    if session is None:
        session = TANSU_SESSION_TIMEOUT if tansu else SESSION_TIMEOUT
    settings["broker_session_timeout"] = session
    return settings, compat.TANSU_FETCH_MAX_WAIT_MS if tansu else FETCH_WAIT_MS


def broker_credentials(kafka: KafkaConfig) -> Any:
    """faust's ``broker_credentials`` for ``kafka``'s security settings: the same SASL mechanism,
    user and password, CA and client certificate as the librdkafka clients get (None: plaintext).

    Raises :class:`ConfigError` naming the variables if a TLS file cannot be loaded.
    """
    protocol = kafka.security_protocol
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        try:
            context = ssl.create_default_context(cafile=kafka.ssl_ca_location)
            if kafka.ssl_certificate_location:
                context.load_cert_chain(
                    kafka.ssl_certificate_location,
                    kafka.ssl_key_location,
                    kafka.ssl_key_password,
                )
        except (OSError, ssl.SSLError) as exc:  # the message names the file, never the password
            raise ConfigError(
                "cannot load the TLS files (AGENT_FAILOVER_KAFKA_SSL_CA_LOCATION, "
                "AGENT_FAILOVER_KAFKA_SSL_CERTIFICATE_LOCATION, "
                f"AGENT_FAILOVER_KAFKA_SSL_KEY_LOCATION, ..._KEY_PASSWORD): {exc}"
            ) from None
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password,
            mechanism=kafka.sasl_mechanism,
            ssl_context=context,
        )
    return faust.SSLCredentials(context) if context is not None else None


def _committed_reader(config: MonitorConfig) -> Any:
    """A blocking function reading the agents group's committed offsets (runs in an executor)."""
    admin: list[AdminClient] = []

    def committed(partitions: Collection[tuple[str, int]]) -> dict[tuple[str, int], int | None]:
        if not admin:
            admin.append(AdminClient(config.kafka.as_librdkafka_dict()))
        request = ConsumerGroupTopicPartitions(
            config.agents_group_id, [TopicPartition(t, p) for t, p in sorted(partitions)]
        )
        futures = admin[0].list_consumer_group_offsets([request], request_timeout=5.0)
        result = futures[config.agents_group_id].result(timeout=10.0)
        return {
            (tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None)
            for tp in result.topic_partitions
        }

    return committed


def create_app(config: MonitorConfig) -> faust.App:
    """Build the monitor's faust app for ``config`` (no network I/O until the worker starts,
    except the broker-type probe of the Tansu compatibility layer)."""
    return build_app(config)[0]


def _lag_reporter(config: MonitorConfig, metrics: MonitorMetrics) -> Callable[[str, int], None]:
    """Where the heartbeat consumer's statistics report its lag: heartbeats only (the same
    consumer reads the fleet topic, not a figure of the contract)."""
    heartbeats = config.topics.heartbeats

    def report(topic: str, records: int) -> None:
        if topic == heartbeats:
            metrics.consumer_lag.labels(topic=logical_topic(config.topics, topic)).set(records)

    return report


def build_app(config: MonitorConfig) -> tuple[faust.App, Monitor, LivenessTracker]:
    """:func:`create_app`, also returning the :class:`Monitor` behind it and its heartbeat
    reader (started with the app; the caller stops it when the worker exits). The HTTP server
    serves from daemon threads until the process exits."""
    topics = config.topics
    settings: dict[str, Any] = {
        "broker": config.kafka.faust_broker_url(),
        "store": "memory://",
        "topic_partitions": topics.agent_partitions,
        "topic_replication_factor": topics.replication_factor,
        # Standbys only help a RocksDB store; with memory:// they would also blur which
        # partitions are active. Detection filters on active partitions anyway.
        "table_standby_replicas": 0,
        "broker_heartbeat_interval": BROKER_HEARTBEAT_INTERVAL,
        "processing_guarantee": "at_least_once",
        # A fresh deployment must learn the fleet from the retained task events.
        "consumer_auto_offset_reset": "earliest",
        "web_enabled": config.web_port is not None,
        "web_port": config.web_port or 6066,
        "datadir": config.data_dir,
        "autodiscover": False,
        "producer_acks": -1,
        "broker_credentials": broker_credentials(config.kafka),
    }
    broker_settings, fetch_wait_ms = _compat(config)
    settings.update(broker_settings)
    app = faust.App(config.app_id, **settings)
    table = agents_table(app, topics.agent_partitions)
    metrics = MonitorMetrics()
    probes = Probes()
    metrics.bind_probes(lambda: probes.ready().ok, probes.broker_up)
    directory = FleetDirectory(monitor_id(), topics.agent_partitions)
    liveness = LivenessTracker(
        config.kafka,
        topics,
        on_heartbeats=metrics.heartbeats_received,
        on_dead_letter=lambda t, why: metrics.dead_letter(logical_topic(topics, t), why),
        on_stats=stats_handler(probes.broker_answered, _lag_reporter(config, metrics)),
        directory=directory,
        fetch_wait_ms=fetch_wait_ms,
    )

    signer = config.kafka.signer
    warn_if_unsigned(signer, "monitor")

    async def send(topic: str, key: bytes, value: bytes, partition: int) -> Any:
        # Signer.headers() are bytes values; typed the way confluent-kafka takes them.
        headers = cast("list[tuple[str, bytes]] | None", signer.headers(topic, key, value))
        return await app.producer.send(topic, key, value, partition, None, headers)

    monitor = Monitor(config, table, liveness, metrics, send, _committed_reader(config), directory)
    # The normal task topic too: measured as soon as the agent consumes it.
    consumed = (topics.task_events, topics.priority, topics.control, topics.tasks)
    lag = ConsumerLag({t: logical_topic(topics, t) for t in consumed})
    source = app.topic(
        topics.task_events,
        topics.priority,
        topics.control,
        key_serializer="raw",
        value_serializer="raw",
        partitions=topics.agent_partitions,
    )

    @app.agent(source, name="monitor-records")
    async def records(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            await monitor.on_message(msg, time.monotonic())
            lag.handled(msg.topic, msg.partition, msg.offset)

    @app.task  # type: ignore[untyped-decorator]
    async def start_side_services() -> None:
        liveness.start()
        if config.metrics_port is not None:
            app_ = make_app(metrics.registry, probes)
            HttpServer(config.metrics_host, config.metrics_port, app_).start()

    @app.timer(config.tick_interval)  # type: ignore[untyped-decorator]
    async def detect() -> None:
        owned = {
            tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topics.control
        }
        busy = bool(app.rebalancing or getattr(app, "in_recovery", False))
        now = time.monotonic()
        try:
            report = await monitor.tick(owned, busy, now)
        except Exception as exc:  # a failed tick must not stop detection; the next one retries
            log.exception("detection tick failed")
            failed = f"detection tick failed ({type(exc).__name__}), see the log"
            probes.tick(now, failed, len(owned))
            return
        recovered = cast(Any, app.tables).recovery.completed.is_set()
        reason = not_ready(report, assigned=recovered, grace_left=monitor.grace_left(now))
        probes.tick(now, reason, len(owned))

    @app.timer(LAG_INTERVAL)  # type: ignore[untyped-decorator]
    async def measure_lag() -> None:
        if app.rebalancing:
            return  # the assignment is changing under the consumer: measure after
        try:
            lags = await lag.measure(app.consumer, app.consumer.assignment())
        except Exception:  # a figure is missing for a second, nothing else
            log.exception("cannot measure the consumer lag")
            return
        for name, records in lags.items():
            metrics.consumer_lag.labels(topic=name).set(records)

    return app, monitor, liveness


_default: faust.App | None = None


def __getattr__(name: str) -> Any:
    """``streams.app.app``: the app configured from the environment, for ``faust -A``."""
    global _default
    if name == "app":
        if _default is None:
            _default = create_app(MonitorConfig.from_env())
        return _default
    raise AttributeError(name)
