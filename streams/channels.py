"""The Kafka I/O the monitor's parts are given: how they send and what a consumed record looks
like (faust provides them in :mod:`streams.app`; the parts never import a Kafka client
themselves), and how a step that must not be skipped is tried until it is done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from agent_failover.models import RECORD_LIMIT, RECORD_MARGIN
from agent_failover.signing import Headers

log = logging.getLogger(__name__)

#: Seconds between two tries of a step that failed.
RETRY_AFTER = 1.0

#: send(topic, key, value, partition) -> awaitable acknowledgement (faust producer semantics). It
#: signs every record with the fleet's key (:mod:`agent_failover.signing`).
Send = Callable[[str, bytes, bytes, int], Awaitable[Awaitable[Any]]]


class Message(Protocol):
    """The part of a faust message the monitor reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers | None


def oversize(key: bytes, value: bytes) -> str | None:
    """Why a record carrying a task (a decision, a forwarded dispatch) is too large to write, or
    None: no broker takes it, so trying again would hold up every record behind it."""
    size = len(key) + len(value)
    if size <= RECORD_LIMIT - RECORD_MARGIN:
        return None
    return (
        f"the record built from it would take {size} bytes, more than the {RECORD_LIMIT} "
        f"bytes a record may have less {RECORD_MARGIN} for what follows it"
    )


async def until_done(
    step: Callable[[], Awaitable[None]],
    what: str,
    keep_going: Callable[[], bool] = lambda: True,
    retry_after: float = RETRY_AFTER,
) -> bool:
    """Run ``step`` until it succeeds (True), or until ``keep_going()`` says to stop after a
    failure (False); every failure is logged.

    For steps whose record must not be left behind: faust moves on to the next record after an
    error, and a task record skipped that way would be lost.
    """
    while True:
        try:
            await step()
            return True
        except Exception:
            log.exception("%s failed; trying again in %.1f s", what, retry_after)
        if not keep_going():
            return False
        await asyncio.sleep(retry_after)
