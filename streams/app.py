"""The faust app of the monitor: ``create_app(config)`` wires the tables, three agents and a timer.

The faust parts are thin, each handing records to :class:`~streams.monitor.Monitor`:

- ``monitor-records`` consumes task-events, tasks.priority and control (raw bytes, co-partitioned
  by agent id; table ``agents``);
- ``intake`` consumes ``tasks`` (new work) and decides where each task runs: it is read without
  acknowledgements, positioned by the ``intake`` table instead (:mod:`streams.intake`);
- ``assign`` consumes ``tasks.assigned`` (co-partitioned with ``tasks``; table ``intake``) and
  forwards the first decision per task record (:mod:`streams.assign`);
- a timer runs detection every ``tick_interval``.

They pass the monitor's clock, ``time.monotonic()``. Heartbeats bypass faust
(:mod:`streams.liveness`).

``faust -A streams.app worker --without-web`` works too: the module attribute ``app`` is built on
first access from the environment (:meth:`MonitorConfig.from_env`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import faust
from faust.types import TP

from agent_failover.config import MonitorConfig
from streams.fleet import FleetDirectory
from streams.liveness import LivenessTracker
from streams.metrics import MonitorMetrics
from streams.monitor import Monitor, monitor_id
from streams.tables import agents_table, intake_table

log = logging.getLogger(__name__)

#: How often faust's consumer heartbeats the monitor group: small, so a dead worker's partitions
#: move quickly (faust's default is 3 s).
BROKER_HEARTBEAT_INTERVAL = 0.5


def _compat(config: MonitorConfig) -> dict[str, Any]:
    """Tansu fixes and settings, when the broker is Tansu (no-op elsewhere or if unavailable)."""
    try:
        from agent_failover.broker import compat
    except ImportError:  # pragma: no cover - the compat layer ships with the package
        return {}
    compat.faust_patches_for(config.kafka)
    settings: dict[str, Any] = compat.faust_settings_for(config.kafka)
    return settings


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


def build_app(config: MonitorConfig) -> tuple[faust.App, Monitor, LivenessTracker]:
    """:func:`create_app`, also returning the :class:`Monitor` behind it and its heartbeat
    reader (started with the app; the caller stops it when the worker exits)."""
    topics = config.topics
    settings: dict[str, Any] = {
        "broker": config.kafka.faust_broker_url(),
        "store": "memory://",
        "topic_partitions": topics.agent_partitions,
        "topic_replication_factor": topics.replication_factor,
        # Standbys only help a RocksDB store; with memory:// they would also blur which
        # partitions are active. Detection filters on active partitions anyway.
        "table_standby_replicas": 0,
        "broker_session_timeout": config.broker_session_timeout,
        "broker_heartbeat_interval": BROKER_HEARTBEAT_INTERVAL,
        "processing_guarantee": "at_least_once",
        # A fresh deployment must learn the fleet from the retained task events.
        "consumer_auto_offset_reset": "earliest",
        "web_enabled": config.web_port is not None,
        "web_port": config.web_port or 6066,
        "datadir": config.data_dir,
        "autodiscover": False,
        "producer_acks": -1,
    }
    settings.update(_compat(config))
    app = faust.App(config.app_id, **settings)
    table = agents_table(app, topics.agent_partitions)
    progress = intake_table(app, topics.task_partitions)
    feed = FaustTaskFeed(app, topics.tasks)
    metrics = MonitorMetrics()
    directory = FleetDirectory(monitor_id(), topics.agent_partitions)
    liveness = LivenessTracker(
        config.kafka,
        topics,
        on_heartbeats=metrics.heartbeats.inc,
        on_dead_letter=lambda topic: metrics.dead_letters.labels(topic=topic).inc(),
        directory=directory,
    )

    async def send(topic: str, key: bytes, value: bytes, partition: int) -> Any:
        return await app.producer.send(topic, key, value, partition, None, None)

    monitor = Monitor(
        config, table, liveness, metrics, send, directory, progress=progress, feed=feed
    )

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
            await monitor.on_message(event.message, time.monotonic())

    # No acknowledgements, hence no committed offsets: where reading starts is the intake
    # table's business (a record is done once its decision is forwarded), and a record may wait
    # for a free slot without holding up a rebalance.
    tasks = raw(topics.tasks, partitions=topics.task_partitions, acks=False)

    @app.agent(tasks, name="intake")
    async def intake(stream: Any) -> None:
        async for event in stream.events():
            await monitor.on_task(event.message, feed.current(event.message))

    assigned = raw(topics.assigned, partitions=topics.task_partitions)

    @app.agent(assigned, name="assign")
    async def assign(stream: Any) -> None:
        async for event in stream.events():
            await monitor.on_decision(event.message)

    @app.task  # type: ignore[untyped-decorator]
    async def start_side_services() -> None:
        liveness.start()
        if config.metrics_port is not None:
            metrics.serve(config.metrics_port)
            log.info("metrics on port %d", config.metrics_port)

    @app.timer(config.tick_interval)  # type: ignore[untyped-decorator]
    async def detect() -> None:
        owned = {
            tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topics.control
        }
        busy = bool(app.rebalancing or getattr(app, "in_recovery", False))
        try:
            await monitor.tick(owned, busy, time.monotonic())
        except Exception:  # a failed tick must not stop detection; the next one retries
            log.exception("detection tick failed")

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
