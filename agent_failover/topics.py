"""Every topic agent-failover uses, with its partitions and configs, and idempotent creation."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from agent_failover.config import KafkaConfig, Topics
from agent_failover.errors import BrokerError, TopicSetupError
from agent_failover.logs import kafka_log_settings
from agent_failover.sdk.kafka import cluster_metadata

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclasses.dataclass(frozen=True)
class TopicSpec:
    """A topic to create: name, partitions and topic-level configs."""

    name: str
    partitions: int
    config: dict[str, str]
    purpose: str
    #: The variable that sets ``partitions`` (None: fixed).
    partitions_var: str | None = None


def topic_specs(topics: Topics) -> list[TopicSpec]:
    """The documented topic set (see docs/protocol.md)."""
    agent = topics.agent_partitions
    by_agent = Topics.ENV["agent_partitions"]

    def delete(ms: int) -> dict[str, str]:
        return {"cleanup.policy": "delete", "retention.ms": str(ms)}

    def keyed(name: str, retention_ms: int, purpose: str) -> TopicSpec:
        return TopicSpec(name, agent, delete(retention_ms), purpose, by_agent)

    def by_task(name: str, purpose: str) -> TopicSpec:
        return TopicSpec(
            name, topics.task_partitions, delete(7 * DAY_MS), purpose, Topics.ENV["task_partitions"]
        )

    return [
        keyed(topics.heartbeats, HOUR_MS, "agent liveness and load"),
        keyed(topics.task_events, 7 * DAY_MS, "agent and task lifecycle"),
        keyed(topics.control, 7 * DAY_MS, "monitor decisions: fence, dispatch"),
        keyed(topics.priority, 7 * DAY_MS, "dispatched tasks, by target"),
        by_task(topics.tasks, "submitted work"),
        # The intake's decisions: as many partitions as `tasks`, so faust co-partitions them.
        by_task(topics.assigned, "intake decisions"),
        # Keyed by task id like `tasks`: a task's outcome lies in the partition of its record.
        by_task(topics.outcomes, "how each task ended"),
        TopicSpec(
            topics.checkpoints,
            topics.checkpoint_partitions,
            # A re-dispatch names a checkpoint by offset: keep superseded values readable for an
            # hour so compaction cannot remove one before the new owner has read it.
            {"cleanup.policy": "compact", "min.compaction.lag.ms": str(HOUR_MS)},
            "latest progress per task",
            Topics.ENV["checkpoint_partitions"],
        ),
        TopicSpec(topics.failovers, 1, delete(30 * DAY_MS), "audit of failover decisions"),
        TopicSpec(topics.dead_letter, 1, delete(30 * DAY_MS), "records that failed validation"),
        # Soft state republished every half second: readers start at the end, an hour is plenty.
        TopicSpec(topics.fleet, 1, delete(HOUR_MS), "monitor workers' healthy agents"),
    ]


def check_partitions(existing: Mapping[str, Any], specs: Iterable[TopicSpec]) -> list[str]:
    """The names of ``specs`` missing from ``existing`` (topic name -> metadata).

    Raises :class:`TopicSetupError` if one exists with another partition count: co-partitioning
    (and an agent's own partition of ``control`` and ``tasks.priority``) would silently break.
    """
    missing = []
    for spec in specs:
        meta = existing.get(spec.name)
        if meta is None:
            missing.append(spec.name)
        elif len(meta.partitions) != spec.partitions:
            setting = f" ({spec.partitions_var})" if spec.partitions_var else ""
            raise TopicSetupError(
                f"topic {spec.name} exists with {len(meta.partitions)} partitions, the "
                f"configuration says {spec.partitions}{setting}: change the configuration or "
                "the topic"
            )
    return missing


def ensure_topics(
    kafka: KafkaConfig | str,
    topics: Topics | None = None,
    *,
    specs: Iterable[TopicSpec] | None = None,
    timeout: float = 30.0,
) -> list[str]:
    """Create every missing topic; existing topics are left as they are.

    Returns the names created. Raises :class:`~agent_failover.errors.BrokerUnreachable` if no
    broker answers within ``kafka.connect_timeout``, :class:`TopicSetupError` if an existing topic
    has a partition count other than the configured one, :class:`BrokerError` if the broker
    refuses a creation.
    """
    kafka = KafkaConfig.coerce(kafka)
    topics = topics or Topics()
    wanted = list(specs) if specs is not None else topic_specs(topics)
    names = {s.name: s for s in wanted}
    missing = [names[n] for n in check_partitions(cluster_metadata(kafka).topics, wanted)]
    if not missing:
        return []
    admin = AdminClient({**kafka.as_librdkafka_dict(), **kafka_log_settings("admin")})
    futures = admin.create_topics(
        [
            NewTopic(s.name, s.partitions, topics.replication_factor, config=s.config)
            for s in missing
        ],
        request_timeout=timeout,
    )
    created = []
    try:
        for name, future in futures.items():
            try:
                future.result(timeout=timeout)
                created.append(name)
                log.info("created topic %s", name)
            except KafkaException as exc:
                if exc.args and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue  # created concurrently by another process: fine
                raise BrokerError(f"cannot create topic {name}: {exc}") from exc
    finally:
        admin.poll(0)  # an admin client's log lines are served by poll()
    return created
