"""The faust app of the monitor: ``create_app(config)`` wires the tables, four agents, two timers.

The faust parts are thin, each handing records to :class:`~streams.monitor.Monitor`:

- ``monitor-records`` consumes task-events, tasks.priority and control (raw bytes, co-partitioned
  by agent id; table ``agents``);
- ``intake`` consumes ``tasks`` (new work) and decides where each task runs: it is read without
  acknowledgements, positioned by the ``intake`` table instead (:mod:`streams.intake`);
- ``assign`` consumes ``tasks.assigned`` (co-partitioned with ``tasks``; table ``intake``) and
  forwards the first decision per task record (:mod:`streams.assign`);
- ``agent-dead-letters`` consumes the one-partition ``dead-letter`` topic and counts the dead
  letters agents wrote (:class:`~streams.deadletters.AgentLetters`);
- a timer runs detection every ``tick_interval``.

They pass the monitor's clock, ``time.monotonic()``. Heartbeats bypass faust
(:mod:`streams.liveness`). Beside them: ``/metrics``, ``/healthz`` and ``/readyz``
(:mod:`streams.http`), and a timer measuring the first three agents' consumer lag each second.

``faust -A agent_failover.streams.app worker --without-web`` works too: the module attribute
``app`` is built on first access from the environment (:meth:`MonitorConfig.from_env`).
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from typing import Any, cast

import faust
from faust.types import TP

from agent_failover.broker import compat
from agent_failover.config import KafkaConfig, MonitorConfig
from agent_failover.errors import ConfigError
from agent_failover.signing import warn_if_unsigned
from agent_failover.streams.fleet import FleetDirectory
from agent_failover.streams.http import HttpServer, make_app
from agent_failover.streams.kafkastats import stats_handler
from agent_failover.streams.lag import ConsumerLag
from agent_failover.streams.liveness import FETCH_WAIT_MS, LivenessTracker
from agent_failover.streams.metrics import MonitorMetrics, logical_topic
from agent_failover.streams.monitor import Monitor, monitor_id
from agent_failover.streams.probes import Probes, not_ready
from agent_failover.streams.tables import agents_table, intake_table

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


class FaustTaskFeed:
    """The task partitions as the faust worker holds them: the intake's
    :class:`~streams.intake.TaskFeed`."""

    def __init__(self, app: faust.App, topic: str) -> None:
        self._app = app
        self._topic = topic

    def owned(self) -> frozenset[int]:
        """The task partitions assigned to this worker."""
        actives = self._app.assignor.assigned_actives()
        return frozenset(tp.partition for tp in actives if tp.topic == self._topic)

    def busy(self) -> bool:
        """Rebalancing or recovering the tables."""
        return bool(self._app.rebalancing or getattr(self._app, "in_recovery", False))

    def highwater(self, partition: int) -> int | None:
        """The end offset the consumer last saw for a task partition, if it knows one."""
        try:
            high = self._app.consumer.highwater(TP(self._topic, partition))
        except Exception:  # not assigned (any more), or nothing fetched yet
            return None
        return high if isinstance(high, int) else None

    async def skip_to(self, partition: int, offset: int) -> None:
        """Fetch the task partition from ``offset`` on (if it is still assigned here)."""
        tp = TP(self._topic, partition)
        if tp in self._app.assignor.assigned_actives():
            await self._app.consumer.seek(tp, offset)

    def current(self, message: Any) -> Callable[[], bool]:
        """Whether ``message`` is still this worker's: same assignment, partition still owned."""
        generation, tp = message.generation_id, message.tp
        app = self._app

        def check() -> bool:
            return (
                not self.busy()
                and generation == app.consumer_generation_id
                and tp in app.assignor.assigned_actives()
            )

        return check


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
    progress = intake_table(app, topics.task_partitions)
    feed = FaustTaskFeed(app, topics.tasks)
    metrics = MonitorMetrics()
    probes = Probes()
    metrics.bind_probes(lambda: probes.ready().ok, probes.broker_up)
    directory = FleetDirectory(monitor_id(), topics.agent_partitions)

    def answered(at: float) -> None:
        # Called from the reader's thread once it runs, after `liveness` below exists.
        probes.broker_answered(at)
        liveness.broker_answered(at)

    liveness = LivenessTracker(
        config.kafka,
        topics,
        on_heartbeats=metrics.heartbeats_received,
        on_dead_letter=lambda t, why: metrics.dead_letter(logical_topic(topics, t), why),
        on_dead_letter_lost=lambda t: metrics.dead_letter_lost(logical_topic(topics, t)),
        on_stats=stats_handler(answered, _lag_reporter(config, metrics)),
        directory=directory,
        fetch_wait_ms=fetch_wait_ms,
    )

    signer = config.kafka.signer
    warn_if_unsigned(signer, "monitor")

    async def send(topic: str, key: bytes, value: bytes, partition: int) -> Any:
        # Signer.headers() are bytes values; typed the way confluent-kafka takes them.
        headers = cast("list[tuple[str, bytes]] | None", signer.headers(topic, key, value))
        return await app.producer.send(topic, key, value, partition, None, headers)

    monitor = Monitor(
        config, table, liveness, metrics, send, directory, progress=progress, feed=feed
    )
    consumed = (topics.task_events, topics.priority, topics.control, topics.tasks, topics.assigned)
    lag = ConsumerLag({t: logical_topic(topics, t) for t in consumed})

    def raw(*names: str, partitions: int, acks: bool = True) -> Any:
        return app.topic(
            *names, key_serializer="raw", value_serializer="raw", partitions=partitions, acks=acks
        )

    source = raw(
        topics.task_events, topics.priority, topics.control, partitions=topics.agent_partitions
    )

    @app.agent(source, name="monitor-records")
    async def records(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            await monitor.on_message(msg, time.monotonic())
            lag.handled(msg.topic, msg.partition, msg.offset)

    # No acknowledgements, hence no committed offsets: where reading starts is the intake
    # table's business (a record is done once its decision is forwarded), and a record may wait
    # for a free slot without holding up a rebalance.
    tasks = raw(topics.tasks, partitions=topics.task_partitions, acks=False)

    @app.agent(tasks, name="intake")
    async def intake(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            await monitor.on_task(msg, feed.current(msg))
            lag.handled(msg.topic, msg.partition, msg.offset)

    assigned = raw(topics.assigned, partitions=topics.task_partitions)

    @app.agent(assigned, name="assign")
    async def assign(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            await monitor.on_decision(msg)
            lag.handled(msg.topic, msg.partition, msg.offset)

    # One partition: one worker counts the agents' dead letters for the whole fleet.
    letters = raw(topics.dead_letter, partitions=1)

    @app.agent(letters, name="agent-dead-letters")
    async def agent_dead_letters(stream: Any) -> None:
        async for event in stream.events():
            monitor.on_dead_letter(event.message)

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
    """``agent_failover.streams.app.app``: the app configured from the environment (for
    ``faust -A``)."""
    global _default
    if name == "app":
        if _default is None:
            _default = create_app(MonitorConfig.from_env())
        return _default
    raise AttributeError(name)
