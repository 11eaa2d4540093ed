"""Tansu's limits that shape the design, re-measured on every run (docs/tansu.md).

These tests assert what Tansu does, including where it differs from Apache Kafka; they are
marked ``tansu_limit`` in their names and skip on a broker that is not Tansu. The stale-generation
commit tests assert what the claim protocol relies on and must hold on any broker.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.client import AIOKafkaClient, CoordinationType
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)
from aiokafka.protocol.commit import OffsetCommitRequest
from aiokafka.protocol.group import HeartbeatRequest, JoinGroupRequest, SyncGroupRequest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from agent_failover.broker.embedded import EmbeddedBroker, tansu_binary
from agent_failover.dev.reading import read_topic
from tests.broker.conftest import new_topic

pytestmark = pytest.mark.broker

ILLEGAL_GENERATION = 22
UNKNOWN_MEMBER_ID = 25
REBALANCE_IN_PROGRESS = 27
MEMBER_ID_REQUIRED = 79


# -- transactions ----------------------------------------------------------------------------


def test_tansu_limit_read_committed_sees_aborted_transactions(
    tansu: EmbeddedBroker,
) -> None:
    """Documents a broker limit: read_committed delivers an aborted transaction's records."""
    bootstrap = tansu.bootstrap_servers
    topic = new_topic(bootstrap)
    txid = f"tx-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": txid})
    producer.init_transactions(15)
    producer.begin_transaction()
    producer.produce(topic, value=b"aborted")
    producer.flush(10)
    producer.abort_transaction(15)
    producer.begin_transaction()
    producer.produce(topic, value=b"committed")
    producer.flush(10)
    producer.commit_transaction(15)
    producer.begin_transaction()
    producer.produce(topic, value=b"open")
    producer.flush(10)  # delivered, transaction left open
    seen = [r.value for r in read_topic(bootstrap, topic, isolation="read_committed")]
    assert b"committed" in seen
    assert b"aborted" in seen  # Kafka: filtered out
    # The still-open transaction's record: an earlier probe saw it delivered too; read here to
    # the end that read_committed reports, it is not (docs/tansu.md). Either way read_committed
    # cannot be relied on, which is what this test pins.
    producer.abort_transaction(15)


def test_tansu_limit_second_transactional_producer_does_not_fence_the_first(
    tansu: EmbeddedBroker,
) -> None:
    """Documents a broker limit: on Kafka the old producer's commit fails with a fencing error."""
    bootstrap = tansu.bootstrap_servers
    topic = new_topic(bootstrap)
    txid = f"tx-{uuid.uuid4().hex[:8]}"
    conf = {"bootstrap.servers": bootstrap, "transactional.id": txid}
    old = Producer({**conf, "transaction.timeout.ms": 10_000})
    old.init_transactions(15)
    old.begin_transaction()
    old.produce(topic, value=b"from-old")
    old.flush(10)
    new = Producer(conf)
    new.init_transactions(15)  # Kafka: bumps the epoch, fences `old`
    error: KafkaException | None = None
    try:
        old.commit_transaction(5)
    except KafkaException as exc:
        error = exc
    # What we observe: no clean "fenced" error for the old producer.
    fenced = error is not None and error.args[0].code() in (
        -144,  # _FENCED
        90,  # PRODUCER_FENCED
        47,  # INVALID_PRODUCER_EPOCH
    )
    assert not fenced, f"Tansu now fences cleanly ({error}): update docs/tansu.md"


# -- consumer-group commits with a stale generation (the claim protocol relies on these) -------


class _Member:
    """One consumer-group member speaking the group protocol by hand, so a test controls when
    it heartbeats, rejoins and commits (a real client would rejoin on its own)."""

    def __init__(self, bootstrap: str, group: str, topic: str, name: str) -> None:
        self.bootstrap, self.group, self.topic, self.name = bootstrap, group, topic, name
        self.member_id = ""
        self.generation = -1
        self.leader = ""
        self.members: list[str] = []

    async def start(self) -> None:
        self.client = AIOKafkaClient(bootstrap_servers=self.bootstrap, client_id=self.name)
        await self.client.bootstrap()
        self.node = await self.client.coordinator_lookup(CoordinationType.GROUP, self.group)

    async def close(self) -> None:
        await self.client.close()

    async def join(self, session_ms: int = 6000) -> None:
        metadata = ConsumerProtocolMemberMetadata(0, [self.topic], b"").encode()
        while True:
            # group_instance_id None: an empty string would make every member the same static one
            response: Any = await self.client.send(
                self.node,
                JoinGroupRequest(
                    self.group,
                    session_ms,
                    session_ms,
                    self.member_id,
                    None,
                    "consumer",
                    [("range", metadata)],
                ),
            )
            if response.error_code == MEMBER_ID_REQUIRED:
                self.member_id = response.member_id
                continue
            assert response.error_code == 0, response
            self.member_id, self.generation = response.member_id, response.generation_id
            self.leader = response.leader_id
            self.members = [m[0] for m in response.members]
            return

    async def sync(self) -> int:
        assignment = []
        if self.member_id == self.leader:
            # partition 0 to the first member, none to the others; content is not checked
            assignment = [
                (
                    m,
                    ConsumerProtocolMemberAssignment(
                        0, [(self.topic, [0] if i == 0 else [])], b""
                    ).encode(),
                )
                for i, m in enumerate(self.members)
            ]
        response: Any = await self.client.send(
            self.node,
            SyncGroupRequest(self.group, self.generation, self.member_id, None, assignment),
        )
        return int(response.error_code)

    async def heartbeat(self) -> int:
        response: Any = await self.client.send(
            self.node, HeartbeatRequest(self.group, self.generation, self.member_id)
        )
        return int(response.error_code)

    async def commit(
        self, offset: int, *, generation: int | None = None, member_id: str | None = None
    ) -> int:
        request = OffsetCommitRequest(
            self.group,
            self.generation if generation is None else generation,
            self.member_id if member_id is None else member_id,
            -1,
            [(self.topic, [(0, offset, "")])],
        )
        response: Any = await self.client.send(self.node, request)
        return int(response.topics[0][1][0][1])


@pytest.fixture
def group_topic(tansu: EmbeddedBroker) -> Iterator[tuple[str, str, str]]:
    yield tansu.bootstrap_servers, f"grp-{uuid.uuid4().hex[:8]}", new_topic(tansu.bootstrap_servers)


def test_commit_with_a_generation_older_than_a_rebalance_is_rejected(
    group_topic: tuple[str, str, str],
) -> None:
    bootstrap, group, topic = group_topic

    async def scenario() -> dict[str, int]:
        a, b = _Member(bootstrap, group, topic, "a"), _Member(bootstrap, group, topic, "b")
        await a.start()
        await b.start()
        try:
            await a.join()
            assert await a.sync() == 0
            old = a.generation
            codes = {"current": await a.commit(1)}
            b_join = asyncio.ensure_future(b.join())  # starts a rebalance
            codes["heartbeat_during_rebalance"] = await _until_rebalancing(a)
            codes["commit_during_rebalance"] = await a.commit(2)
            await a.join()  # a rejoins: a new generation with both members
            await b_join
            assert {a.member_id, b.member_id} <= set(a.members + b.members)
            assert await a.sync() == 0
            assert await b.sync() == 0
            codes["old_generation_after_rebalance"] = await a.commit(3, generation=old)
            codes["new_generation"] = await a.commit(4)
            codes["unknown_member"] = await b.commit(5, member_id="no-such-member")
            return codes
        finally:
            await a.close()
            await b.close()

    codes = asyncio.run(asyncio.wait_for(scenario(), timeout=60))
    assert codes["current"] == 0
    assert codes["heartbeat_during_rebalance"] == REBALANCE_IN_PROGRESS
    # As on Kafka: a member of the current generation may commit while the group rebalances.
    assert codes["commit_during_rebalance"] == 0
    assert codes["old_generation_after_rebalance"] == ILLEGAL_GENERATION
    assert codes["new_generation"] == 0
    assert codes["unknown_member"] == UNKNOWN_MEMBER_ID


async def _until_rebalancing(member: _Member) -> int:
    """Heartbeat until the coordinator reports the rebalance (or 15 s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while True:
        code = await member.heartbeat()
        if code != 0 or loop.time() > deadline:
            return code
        await asyncio.sleep(0.05)


def test_commit_from_a_member_whose_session_expired_is_rejected(
    group_topic: tuple[str, str, str],
) -> None:
    bootstrap, group, topic = group_topic

    async def scenario() -> tuple[int, int]:
        a, b = _Member(bootstrap, group, topic, "a"), _Member(bootstrap, group, topic, "b")
        await a.start()
        await b.start()
        try:
            await a.join(session_ms=2000)
            assert await a.sync() == 0
            b_join = asyncio.ensure_future(b.join())
            await _until_rebalancing(a)
            await a.join(session_ms=2000)
            await b_join
            assert await a.sync() == 0
            assert await b.sync() == 0
            # a goes silent. b heartbeats and rejoins when the coordinator asks, until the
            # group is b alone: the coordinator has expired a.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while b.members != [b.member_id]:  # only the leader is told the members
                assert loop.time() < deadline, "a's session never expired"
                if await b.heartbeat() == REBALANCE_IN_PROGRESS:
                    await b.join()
                    await b.sync()
                else:
                    await asyncio.sleep(0.1)  # heartbeat interval
            return await a.commit(5), await a.heartbeat()
        finally:
            await a.close()
            await b.close()

    commit_code, heartbeat_code = asyncio.run(asyncio.wait_for(scenario(), timeout=60))
    assert commit_code == UNKNOWN_MEMBER_ID
    assert heartbeat_code == UNKNOWN_MEMBER_ID


# -- storage ---------------------------------------------------------------------------------


def test_tansu_limit_nothing_survives_a_restart(tmp_path: Path) -> None:
    with EmbeddedBroker(log_path=tmp_path / "first.log") as first:
        topic = new_topic(first.bootstrap_servers)
    with EmbeddedBroker(log_path=tmp_path / "second.log") as second:
        topics = (
            AdminClient({"bootstrap.servers": second.bootstrap_servers})
            .list_topics(timeout=10)
            .topics
        )
        assert topic not in topics


# -- security ----------------------------------------------------------------------------------

_CREATE_ACL = """
import sys
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient,
                                   ResourcePatternType, ResourceType)
acl = AclBinding(ResourceType.TOPIC, "t", ResourcePatternType.LITERAL, "User:alice", "*",
                 AclOperation.WRITE, AclPermissionType.ALLOW)
for future in AdminClient({"bootstrap.servers": sys.argv[1]}).create_acls([acl]).values():
    print("created", future.result(timeout=10))
"""


def test_tansu_limit_acls_are_neither_kept_nor_enforced(tansu: EmbeddedBroker) -> None:
    """Documents a broker limit (docs/tansu.md): CreateAcls answers nothing librdkafka can read
    (the client process dies on an assertion, or the call fails), DescribeAcls answers no ACL,
    and any client writes any topic."""
    bootstrap = tansu.bootstrap_servers
    child = subprocess.run(
        [sys.executable, "-c", _CREATE_ACL, bootstrap], capture_output=True, text=True, timeout=60
    )
    assert child.returncode != 0 and "created" not in child.stdout, child.stdout + child.stderr
    acl_filter = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        None,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    admin = AdminClient({"bootstrap.servers": bootstrap})
    assert admin.describe_acls(acl_filter, request_timeout=10).result() == []
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(new_topic(bootstrap), b"anyone may write")
    assert producer.flush(10) == 0


def test_tansu_limit_tls_cannot_be_enabled(tmp_path: Path) -> None:
    """Documents a broker limit: --cert and --key exclude each other, and TLS needs both."""
    (tmp_path / "c.pem").write_text("")
    (tmp_path / "k.pem").write_text("")
    args = ["broker", "--cert", str(tmp_path / "c.pem"), "--key", str(tmp_path / "k.pem")]
    done = subprocess.run([str(tansu_binary()), *args], capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "'--cert <CERT>' cannot be used with '--key <KEY>'" in done.stderr, done.stderr
