"""The Tansu compatibility layer: fixes for Tansu's quirks, active only when the broker is Tansu.

Against Apache Kafka (or any broker :func:`is_tansu` says is not Tansu) nothing here changes
anything. The measurements behind each fix are in docs/tansu.md.

Detection (:func:`is_tansu`): the cluster id the broker reports in a metadata response. Tansu's
default is ``tansu_cluster`` and the embedded broker uses ``tansu-embedded-<hex>``: an id starting
with ``tansu`` means Tansu. A Tansu started with another ``--cluster-id`` is not recognised; set
``AGENT_FAILOVER_BROKER_IS_TANSU=1`` (or ``0`` to force "not Tansu").

faust fixes, for the monitor (call :func:`faust_patches_for` before creating the faust app)::

    from agent_failover.broker.compat import faust_patches_for, faust_settings_for

    faust_patches_for(config.kafka)           # no-op unless the broker is Tansu
    app = faust.App(..., **faust_settings_for(config.kafka))

1. End offsets. Tansu answers ListOffsets(LATEST) with the base offset of the partition's last
   batch + 1, not the log end; faust takes changelog highwaters from it, so table recovery stops
   short and a key keeps a stale value. The fix asks the broker for a Fetch at (reported end - 1),
   which returns the true high watermark, and uses that.
2. Fetch wait. A Tansu fetch that finds no data waits its full ``fetch.wait.max.ms`` even when data
   arrives meanwhile; faust hard-codes 1500 ms for its stream consumer. The fix sets
   :data:`TANSU_FETCH_MAX_WAIT_MS` on that consumer.
3. Producer idempotence and transactions. aiokafka sends InitProducerId v0, which Tansu refuses,
   and Tansu's transactions do not isolate anyway: :func:`faust_settings_for` keeps faust at
   ``processing_guarantee="at_least_once"``. Nothing is patched for this.
4. LeaveGroup. A LeaveGroup that reaches Tansu while its group is rebalancing leaves the group
   unable to ever complete a rebalance again (every SyncGroup answers REBALANCE_IN_PROGRESS), so
   a monitor worker stopped gracefully at the wrong moment would stop detection for good. The
   fix makes aiokafka's group coordinator forget its generation without telling the broker: a
   stopped member leaves by session expiry, and its partitions wait for its session timeout.

The patches are installed into faust's aiokafka driver and aiokafka's group coordinator once per
process; each patched method applies its fix only to clients whose bootstrap servers were
registered as Tansu, so a process that also talks to a real Kafka is unaffected there.
"""

from __future__ import annotations

import collections
import functools
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from agent_failover.config import KafkaConfig
from agent_failover.errors import BrokerError, ConfigError
from agent_failover.logs import kafka_log_settings

log = logging.getLogger(__name__)

#: Fetch wait for aiokafka consumers on Tansu: a waiting fetch is not woken by new data, so this is
#: the latency floor of a stream. 10 ms measured p50 46 ms / p99 118 ms through a faust agent.
TANSU_FETCH_MAX_WAIT_MS = 10

IS_TANSU_ENV = "AGENT_FAILOVER_BROKER_IS_TANSU"

_is_tansu_cache: dict[str, bool] = {}
_lock = threading.Lock()


def _normalise(bootstrap: str | Iterable[str]) -> str:
    servers = bootstrap.split(",") if isinstance(bootstrap, str) else list(bootstrap)
    return ",".join(sorted(s.strip().lower() for s in servers if s.strip()))


def _env_override() -> bool | None:
    raw = os.environ.get(IS_TANSU_ENV, "").strip().lower()
    if not raw:
        return None
    if raw in ("1", "true", "yes"):
        return True
    if raw in ("0", "false", "no"):
        return False
    raise ConfigError(f"{IS_TANSU_ENV}={raw!r}: use 1 or 0")


def cluster_id_is_tansu(cluster_id: str | None) -> bool:
    """Whether a cluster id is one Tansu uses (``tansu_cluster``, ``tansu-embedded-...``)."""
    return bool(cluster_id) and str(cluster_id).lower().startswith("tansu")


def is_tansu(kafka: KafkaConfig | str, *, timeout: float = 10.0) -> bool:
    """Whether the broker at ``kafka`` is Tansu, from the cluster id in its metadata.

    The answer is cached per bootstrap string (a failure to reach the broker is not cached and
    raises :class:`BrokerError`). ``AGENT_FAILOVER_BROKER_IS_TANSU=1|0`` overrides the detection.
    """
    override = _env_override()
    if override is not None:
        return override
    kafka = KafkaConfig.coerce(kafka)
    key = _normalise(kafka.bootstrap_servers)
    with _lock:
        cached = _is_tansu_cache.get(key)
    if cached is not None:
        return cached
    conf: dict[str, Any] = {
        **kafka.as_librdkafka_dict(),
        **kafka_log_settings("admin"),
    }
    try:
        metadata = AdminClient(conf).list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BrokerError(
            f"cannot read metadata from {kafka.bootstrap_servers} to detect the broker: {exc}"
        ) from exc
    result = cluster_id_is_tansu(metadata.cluster_id)
    log.debug("broker %s: cluster id %r, tansu=%s", key, metadata.cluster_id, result)
    with _lock:
        _is_tansu_cache[key] = result
    return result


# -- end offsets ---------------------------------------------------------------------------------


async def corrected_end_offsets(consumer: Any, reported: Mapping[Any, int]) -> dict[Any, int]:
    """Correct Tansu's ListOffsets(LATEST) answers with the high watermark of a Fetch.

    ``consumer`` is a started :class:`aiokafka.AIOKafkaConsumer` (its client sends the fetches);
    ``reported`` maps :class:`aiokafka.TopicPartition` to the end offset ListOffsets gave. For each
    non-empty partition one Fetch at ``reported - 1`` (an offset inside the last batch, so data is
    there and the broker answers at once) is sent to the leader and its high watermark taken. A
    failed fetch raises: a silently short end offset would mean silently stale table values.
    """
    from aiokafka.errors import for_code
    from aiokafka.protocol.fetch import FetchRequest
    from aiokafka.structs import TopicPartition

    client = consumer._client
    by_node: dict[int, dict[str, list[tuple[int, int, int]]]] = collections.defaultdict(
        lambda: collections.defaultdict(list)
    )
    result = dict(reported)
    for tp, end in reported.items():
        if end is None or end <= 0:
            continue  # empty partition: nothing to correct
        node = client.cluster.leader_for_partition(tp)
        if node is None or node < 0:
            raise BrokerError(f"no leader known for {tp} while correcting its end offset")
        # 1 byte per partition: the broker still returns the first batch (KIP-74), we only
        # need the high watermark.
        by_node[node][tp.topic].append((tp.partition, end - 1, 1))
    for node, topics in by_node.items():
        request = FetchRequest(
            # Not 0: Tansu 0.6 answers a fetch with max_wait 0 with no partitions at all. The
            # wait is never served, the fetch offset has data.
            max_wait_time=TANSU_FETCH_MAX_WAIT_MS,
            min_bytes=1,
            max_bytes=1,
            isolation_level=0,
            topics=list(topics.items()),
        )
        response = await client.send(node, request)
        missing = {TopicPartition(t, p) for t, parts in topics.items() for p, _, _ in parts}
        for topic, partitions in response.topics:
            for partition, error_code, highwater, *_ in partitions:
                tp = TopicPartition(topic, partition)
                if error_code:
                    raise BrokerError(
                        f"fetch to correct the end offset of {tp} failed: {for_code(error_code)}"
                    )
                missing.discard(tp)
                if highwater > result[tp]:
                    log.debug(
                        "end offset of %s: %d (ListOffsets said %d)", tp, highwater, result[tp]
                    )
                    result[tp] = highwater
        if missing:
            raise BrokerError(f"fetch to correct end offsets did not answer for {sorted(missing)}")
    return result


# -- faust patches -------------------------------------------------------------------------------

# Bootstraps (normalised) whose faust consumers get the fixes; "*" means every consumer.
_active: set[str] = set()
_originals: dict[str, Any] = {}
_ALL = "*"


def _thread_is_tansu(thread: Any) -> bool:
    if _ALL in _active:
        return True
    if not _active:
        return False
    from faust.transport.drivers.aiokafka import server_list

    transport = thread.transport
    return _normalise(server_list(transport.url, transport.default_port)) in _active


def _client_is_tansu(client: Any) -> bool:
    """Whether an aiokafka client's bootstrap servers were registered as Tansu."""
    if _ALL in _active:
        return True
    return bool(_active) and _normalise(client._bootstrap_servers) in _active


def _install() -> None:
    """Wrap faust's aiokafka consumer thread methods and aiokafka's group leave once per
    process."""
    from aiokafka.consumer.group_coordinator import GroupCoordinator
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread as Thread

    if _originals:
        return
    if not hasattr(GroupCoordinator, "_maybe_leave_group") or not hasattr(
        GroupCoordinator, "reset_generation"
    ):
        raise BrokerError(
            "aiokafka's GroupCoordinator has no _maybe_leave_group/reset_generation: the Tansu "
            "LeaveGroup fix needs updating for this aiokafka version"
        )
    leave_group: Callable[[Any], Awaitable[None]] = GroupCoordinator._maybe_leave_group
    highwaters: Callable[[Any, list[Any]], Awaitable[Mapping[Any, int]]] = Thread._highwaters
    create_worker_consumer: Callable[[Any, Any], Any] = Thread._create_worker_consumer

    @functools.wraps(highwaters)
    async def _highwaters(self: Any, partitions: list[Any]) -> Mapping[Any, int]:
        offsets = await highwaters(self, partitions)
        # In a transaction faust uses the last stable offset, which is not ListOffsets.
        if not _thread_is_tansu(self) or self.consumer.in_transaction:
            return offsets
        return await corrected_end_offsets(self._ensure_consumer(), offsets)

    @functools.wraps(create_worker_consumer)
    def _create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = create_worker_consumer(self, transport)
        if _thread_is_tansu(self):
            # faust passes fetch_max_wait_ms=1500 as a literal; aiokafka hands this attribute
            # to its Fetcher in start(). Fail loudly if aiokafka renames it.
            if not hasattr(consumer, "_fetch_max_wait_ms"):
                raise BrokerError(
                    "aiokafka has no AIOKafkaConsumer._fetch_max_wait_ms: the Tansu fetch-wait "
                    "fix needs updating for this aiokafka version"
                )
            consumer._fetch_max_wait_ms = TANSU_FETCH_MAX_WAIT_MS
        return consumer

    @functools.wraps(leave_group)
    async def _maybe_leave_group(self: Any) -> None:
        if not _client_is_tansu(self._client):
            await leave_group(self)
            return
        # What the original does after its LeaveGroup request, without the request.
        if self.generation > 0:
            log.info(
                "group %s: no LeaveGroup on the development broker; the partitions move when "
                "this member's session expires",
                self.group_id,
            )
        self.reset_generation()

    _originals["_highwaters"] = highwaters
    _originals["_create_worker_consumer"] = create_worker_consumer
    _originals["_maybe_leave_group"] = leave_group
    # setattr: mypy rejects assigning to a method, and faust is untyped here anyway.
    setattr(Thread, "_highwaters", _highwaters)  # noqa: B010
    setattr(Thread, "_create_worker_consumer", _create_worker_consumer)  # noqa: B010
    setattr(GroupCoordinator, "_maybe_leave_group", _maybe_leave_group)  # noqa: B010


def apply_faust_patches(kafka: KafkaConfig | str | None = None) -> None:
    """Turn the Tansu fixes on for faust consumers of ``kafka`` (``None``: every consumer), and
    for every aiokafka consumer-group member of ``kafka`` in this process (no LeaveGroup).

    For callers that already know the broker is Tansu; :func:`faust_patches_for` checks first.
    Call it before the faust worker creates its consumer. Idempotent.
    """
    with _lock:
        _install()
        _active.add(
            _ALL if kafka is None else _normalise(KafkaConfig.coerce(kafka).bootstrap_servers)
        )


def faust_patches_for(kafka: KafkaConfig | str) -> bool:
    """Turn the Tansu fixes on for ``kafka`` if it is Tansu; return whether they are on."""
    if not is_tansu(kafka):
        return False
    apply_faust_patches(kafka)
    return True


def remove_faust_patches() -> None:
    """Turn every fix off and restore the original methods (for tests)."""
    from aiokafka.consumer.group_coordinator import GroupCoordinator
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread as Thread

    with _lock:
        _active.clear()
        for name, original in _originals.items():
            setattr(GroupCoordinator if name == "_maybe_leave_group" else Thread, name, original)
        _originals.clear()


def faust_patches_active(kafka: KafkaConfig | str) -> bool:
    """Whether faust consumers of ``kafka`` get the Tansu fixes."""
    key = _normalise(KafkaConfig.coerce(kafka).bootstrap_servers)
    return bool(_originals) and (_ALL in _active or key in _active)


def faust_settings_for(kafka: KafkaConfig | str) -> dict[str, Any]:
    """faust app settings the monitor must use on this broker (empty unless Tansu).

    On Tansu: ``processing_guarantee="at_least_once"``. ``exactly_once`` makes faust use
    idempotent, transactional aiokafka producers; aiokafka's InitProducerId v0 is refused by Tansu
    (the worker fails at start), and Tansu's read_committed does not hide aborted or open
    transactions anyway (docs/tansu.md).
    """
    if not is_tansu(kafka):
        return {}
    return {"processing_guarantee": "at_least_once"}


def _clear_cache() -> None:
    """Forget cached :func:`is_tansu` answers (tests)."""
    with _lock:
        _is_tansu_cache.clear()
