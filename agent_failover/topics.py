"""Every topic agent-failover uses, with its partitions and configs, and idempotent creation."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from agent_failover.config import KafkaConfig, Topics
from agent_failover.errors import BrokerError

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


def topic_specs(topics: Topics) -> list[TopicSpec]:
    """The documented topic set (see docs/protocol.md)."""
    agent = topics.agent_partitions

    def delete(ms: int) -> dict[str, str]:
        return {"cleanup.policy": "delete", "retention.ms": str(ms)}

    return [
        TopicSpec(topics.heartbeats, agent, delete(HOUR_MS), "agent liveness and load"),
        TopicSpec(topics.task_events, agent, delete(7 * DAY_MS), "agent and task lifecycle"),
        TopicSpec(topics.control, agent, delete(7 * DAY_MS), "monitor decisions: fence, dispatch"),
        TopicSpec(topics.priority, agent, delete(7 * DAY_MS), "re-dispatched tasks, by target"),
        TopicSpec(topics.tasks, topics.task_partitions, delete(7 * DAY_MS), "submitted work"),
        # The intake's decisions: as many partitions as `tasks`, so faust co-partitions them.
        TopicSpec(topics.assigned, topics.task_partitions, delete(7 * DAY_MS), "intake decisions"),
        TopicSpec(
            topics.checkpoints,
            topics.checkpoint_partitions,
            # A re-dispatch names a checkpoint by offset: keep superseded values readable for an
            # hour so compaction cannot remove one before the new owner has read it.
            {"cleanup.policy": "compact", "min.compaction.lag.ms": str(HOUR_MS)},
            "latest progress per task",
        ),
        TopicSpec(topics.failovers, 1, delete(30 * DAY_MS), "audit of failover decisions"),
        TopicSpec(topics.dead_letter, 1, delete(30 * DAY_MS), "records that failed validation"),
        # Soft state republished every half second: readers start at the end, an hour is plenty.
        TopicSpec(topics.fleet, 1, delete(HOUR_MS), "monitor workers' healthy agents"),
    ]


def ensure_topics(
    kafka: KafkaConfig | str,
    topics: Topics | None = None,
    *,
    specs: Iterable[TopicSpec] | None = None,
    timeout: float = 30.0,
) -> list[str]:
    """Create every missing topic; existing topics are left as they are.

    Returns the names created. Raises :class:`BrokerError` if the broker refuses, and if an
    existing agent-keyed topic has a partition count other than the configured one (co-partitioning
    would silently break).
    """
    kafka = KafkaConfig.coerce(kafka)
    topics = topics or Topics()
    wanted = list(specs) if specs is not None else topic_specs(topics)
    admin = AdminClient(kafka.as_librdkafka_dict())
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise BrokerError(f"cannot list topics on {kafka.bootstrap_servers}: {exc}") from exc
    for spec in wanted:
        meta = existing.get(spec.name)
        if meta is not None and len(meta.partitions) != spec.partitions:
            raise BrokerError(
                f"topic {spec.name} exists with {len(meta.partitions)} partitions, "
                f"configuration says {spec.partitions}: change the configuration or the topic",
                retryable=False,
            )
    missing = [s for s in wanted if s.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(s.name, s.partitions, topics.replication_factor, config=s.config)
            for s in missing
        ],
        request_timeout=timeout,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
            created.append(name)
            log.info("created topic %s", name)
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue  # created concurrently by another process: fine
            raise BrokerError(f"cannot create topic {name}: {exc}") from exc
    return created
