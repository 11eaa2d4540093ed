"""A LeaveGroup during a rebalance kills a Tansu consumer group; with the compat fix none is sent.

Monitor workers are aiokafka group members (faust's consumer). The churn below is what a rolling
restart of workers does: a new member joins, and while it joins an old one stops gracefully. On
Tansu the old member's LeaveGroup, arriving while the group is forming, leaves the group unable to
finish any rebalance again (docs/tansu.md). With :func:`compat.apply_faust_patches` the stopping
member sends no LeaveGroup; it leaves by session expiry and the group keeps assigning.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener

from agent_failover.broker import compat
from agent_failover.broker.embedded import EmbeddedBroker
from tests.broker.conftest import new_topics

pytestmark = pytest.mark.broker

# The monitor's settings on Tansu (streams/app.py): a 2 s session, a heartbeat every 0.5 s.
SESSION_MS = 2000
HEARTBEAT_MS = 500
#: A member that joins a healthy group gets partitions after about the stopped member's session
#: and one join pause (~3 s): this deadline is generous for a loaded box.
ASSIGN_DEADLINE_S = 20.0
#: Without the fix, a joining member that has no partitions after this long counts as starved
#: (four healthy rounds' time).
STARVED_AFTER_S = 12.0


@pytest.fixture(autouse=True)
def _no_patches_leak() -> Iterator[None]:
    compat.remove_faust_patches()
    yield
    compat.remove_faust_patches()


class _Rejoins(ConsumerRebalanceListener):  # type: ignore[misc]
    """Notes that a member is (re)joining: aiokafka calls this just before its JoinGroup."""

    def __init__(self) -> None:
        self.joining = asyncio.Event()

    async def on_partitions_revoked(self, revoked: object) -> None:
        self.joining.set()

    async def on_partitions_assigned(self, assigned: object) -> None:
        pass


@dataclasses.dataclass
class _Member:
    name: str
    consumer: AIOKafkaConsumer
    listener: _Rejoins
    started: asyncio.Task[None]


def _member(bootstrap: str, group: str, topic: str, name: str) -> _Member:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        client_id=name,
        session_timeout_ms=SESSION_MS,
        heartbeat_interval_ms=HEARTBEAT_MS,
        fetch_max_wait_ms=compat.TANSU_FETCH_MAX_WAIT_MS,
    )
    listener = _Rejoins()
    consumer.subscribe([topic], listener=listener)
    return _Member(name, consumer, listener, asyncio.ensure_future(consumer.start()))


async def _assigned(member: _Member, deadline_s: float) -> bool:
    """Whether ``member`` holds partitions within ``deadline_s`` (polled, never slept on)."""
    loop = asyncio.get_running_loop()
    until = loop.time() + deadline_s
    while loop.time() < until:
        if member.started.done() and member.consumer.assignment():
            return True
        await asyncio.sleep(0.05)
    return False


async def _stop(member: _Member) -> None:
    # A member of a dead group may never finish starting or stopping: bounded, then abandoned.
    member.started.cancel()
    with contextlib.suppress(TimeoutError, asyncio.CancelledError):
        await asyncio.wait_for(member.consumer.stop(), 10)


async def _churn(bootstrap: str, rounds: int, starved_after: float) -> list[str]:
    """Two members, then ``rounds`` times: a new member joins and, while it joins, the oldest
    stops gracefully. Returns the joining member that had no partitions ``starved_after``
    seconds later, if any (empty: the group kept assigning)."""
    topic, group = f"churn-{uuid.uuid4().hex[:8]}", f"churn-{uuid.uuid4().hex[:8]}"
    new_topics(bootstrap, topic, partitions=4)
    members: list[_Member] = []
    starved: list[str] = []
    try:
        for name in ("m0", "m1"):  # m1's join makes generation 1: from then aiokafka leaves
            members.append(_member(bootstrap, group, topic, name))
            assert await _assigned(members[-1], ASSIGN_DEADLINE_S), f"{name} never assigned"
        for n in range(rounds):
            joining = _member(bootstrap, group, topic, f"n{n}")
            members.append(joining)
            # Its JoinGroup goes out right after this callback: the group is now forming.
            await asyncio.wait_for(joining.listener.joining.wait(), ASSIGN_DEADLINE_S)
            await _stop(members.pop(0))
            if not await _assigned(joining, starved_after):
                starved.append(joining.name)
                break  # a dead group stays dead: nothing more to learn
    finally:
        await asyncio.gather(*(_stop(m) for m in members))
    return starved


def test_tansu_limit_a_leave_during_a_rebalance_stops_the_group_for_good(
    tansu: EmbeddedBroker,
) -> None:
    # Without the fix: within three rounds (in practice the first) a joining member never gets
    # partitions. A Tansu release that fixes its coordinator makes this fail: drop the fix then.
    assert asyncio.run(_churn(tansu.bootstrap_servers, 3, STARVED_AFTER_S)) != []


def test_without_leave_group_the_group_keeps_assigning_through_churn(
    tansu: EmbeddedBroker,
) -> None:
    compat.apply_faust_patches(tansu.bootstrap_servers)
    assert asyncio.run(_churn(tansu.bootstrap_servers, 4, ASSIGN_DEADLINE_S)) == []
