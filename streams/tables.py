"""The monitor's faust table: agent id -> :class:`~streams.state.AgentRecord`, changelog-backed.

One table, keyed by agent id and written only while processing a record of that agent's
partition (task-events, tasks.priority and control are co-partitioned by agent id), so its
changelog partition is the agent's partition and one worker owns the agent's whole story.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.serializers import codecs

from streams.state import AgentRecord, decode_record, encode_record

CODEC = "af_agent_record"
TABLE_NAME = "agents"


class AgentRecordCodec(codecs.Codec):
    """orjson codec for :class:`AgentRecord` table values (see :func:`encode_record`)."""

    def _dumps(self, obj: Any) -> bytes:
        if not isinstance(obj, AgentRecord):
            raise TypeError(f"expected AgentRecord, got {type(obj).__name__}")
        return encode_record(obj)

    def _loads(self, s: bytes) -> Any:
        return decode_record(s)


def register_codec() -> None:
    """Register the table value codec with faust (idempotent)."""
    codecs.register(CODEC, AgentRecordCodec())


def agents_table(app: faust.App, partitions: int) -> Any:
    """The ``agents`` table of ``app`` (memory store, changelog ``<app id>-agents-changelog``)."""
    register_codec()
    # What app.Table() does, in two steps: faust derives serializers from key/value *model*
    # types only, and registering the table creates its changelog topic with the serializers it
    # has then. Set ours in between, or recovery hands back plain dicts instead of AgentRecords.
    table_class: Any = app.conf.Table
    table = table_class(
        app,
        name=TABLE_NAME,
        default=None,
        beacon=app.tables.beacon,
        partitions=partitions,
        help="agent id -> epochs, held tasks, fenced epochs, applied decisions",
    )
    table.key_serializer = "json"
    table.value_serializer = CODEC
    return app.tables.add(table)
