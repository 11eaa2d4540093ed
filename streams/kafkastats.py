"""What the heartbeat consumer's librdkafka statistics say: when the broker last answered, and
how many records of the owned partitions the consumer has not handed over yet.

librdkafka emits its statistics as JSON every ``statistics.interval.ms`` from inside
``consume()``. Two of its figures serve the monitor:

- ``brokers[*].rxidle``: microseconds since anything was received from that broker. The consumer
  fetches every 100 ms, so an answering broker keeps it small; a broker that is down or hung
  lets it grow (``agent_failover_broker_up``, ``/readyz``).
- ``topics[*].partitions[*].hi_offset``: the high watermark of the last *fetch* response, and
  ``app_offset``: the offset after the last record handed to the application. Their difference is
  the consumer's lag. The high watermark of a fetch is right even on the development broker,
  whose ListOffsets(LATEST) answer is short (``docs/tansu.md``, quirk a).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson

log = logging.getLogger(__name__)

#: Seconds between two statistics of the heartbeat consumer: short, because detection pauses
#: when they say the broker went quiet (``streams.monitor``), and a healthy broker's silence
#: must read well under that limit (this interval + the 100 ms fetch).
STATS_INTERVAL = 0.25


@dataclasses.dataclass(frozen=True, slots=True)
class ConsumerStats:
    """``answered_ago``: seconds since a broker last answered (``None``: never); ``lag``: records
    not yet handed to the application, per topic, over its assigned partitions."""

    answered_ago: float | None
    lag: dict[str, int]


def _int(value: Any) -> int:
    return value if type(value) is int else -1


def parse_stats(raw: str | bytes) -> ConsumerStats:
    """Read a librdkafka statistics document (only the fields above; others are ignored)."""
    data = orjson.loads(raw)
    idle = [_int(b.get("rxidle")) for b in data.get("brokers", {}).values()]
    known = [i for i in idle if i >= 0]
    lag: dict[str, int] = {}
    for topic, info in data.get("topics", {}).items():
        total = 0
        for p in info.get("partitions", {}).values():
            if _int(p.get("partition")) < 0 or not p.get("desired"):
                continue  # the unassigned-messages placeholder, or a partition not assigned
            high, position = _int(p.get("hi_offset")), _int(p.get("app_offset"))
            if position < 0:  # nothing handed over since the assignment: where fetching is
                position = _int(p.get("next_offset"))
            if high >= 0 and position >= 0:
                total += max(0, high - position)
        lag[topic] = total
    return ConsumerStats(min(known) / 1e6 if known else None, lag)


def stats_handler(
    answered: Callable[[float], None],
    lag: Callable[[str, int], None],
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[str], None]:
    """A ``stats_cb`` reporting when the broker last answered (``answered(at)``, on ``clock``)
    and each topic's lag (``lag(topic, records)``). A document it cannot read is logged and
    skipped: statistics never stop the heartbeat reader."""

    def on_stats(raw: str) -> None:
        try:
            stats = parse_stats(raw)
        except (orjson.JSONDecodeError, AttributeError, TypeError) as exc:
            log.warning("unreadable consumer statistics skipped: %s", exc)
            return
        if stats.answered_ago is not None:
            answered(clock() - stats.answered_ago)
        for topic, records in stats.lag.items():
            lag(topic, records)

    return on_stats
