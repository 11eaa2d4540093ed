"""The monitor's faust tables, changelog-backed.

``agents``: agent id -> :class:`~streams.state.AgentRecord`, written only while processing a
record of that agent's partition (task-events, tasks.priority and control are co-partitioned by
agent id), so its changelog partition is the agent's partition and one worker owns the agent's
whole story.

``intake``: task partition -> ``applied_upto``, the offset after the last task record whose
decision was forwarded (:mod:`streams.assign`), written only while processing a record of that
partition of ``tasks.assigned``: its changelog partition is the task partition.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.serializers import codecs

from agent_failover.streams.state import AgentRecord, decode_record, encode_record

CODEC = "af_agent_record"
TABLE_NAME = "agents"
INTAKE_TABLE = "intake"


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
    help_text = "agent id -> epochs, held tasks, fenced epochs, applied decisions"
    return _table(app, TABLE_NAME, partitions, CODEC, help_text)


def intake_table(app: faust.App, partitions: int) -> Any:
    """The ``intake`` table of ``app`` (memory store, changelog ``<app id>-intake-changelog``,
    ``partitions`` = the task partition count; JSON integer keys and values)."""
    help_text = "task partition -> offset after the last task record forwarded"
    return _table(app, INTAKE_TABLE, partitions, "json", help_text)


def _table(app: faust.App, name: str, partitions: int, values: str, help_text: str) -> Any:
    # What app.Table() does, in two steps: faust derives serializers from key/value *model*
    # types only, and registering the table creates its changelog topic with the serializers it
    # has then. Set ours in between, or recovery hands back plain dicts instead of AgentRecords.
    table_class: Any = app.conf.Table
    table = table_class(
        app,
        name=name,
        default=None,
        beacon=app.tables.beacon,
        partitions=partitions,
        help=help_text,
    )
    table.key_serializer = "json"
    table.value_serializer = values
    return app.tables.add(table)
