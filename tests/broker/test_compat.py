"""Tansu quirks and their fixes (agent_failover.broker.compat), each shown broken, then fixed.

Every scenario runs against a real embedded Tansu; the "broken" half documents the quirk, so a
Tansu release that fixes it makes the test fail and tells us to drop the workaround.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any, cast

import faust
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from confluent_kafka import Producer

from agent_failover.broker import compat
from agent_failover.broker.embedded import EmbeddedBroker
from tests.broker.conftest import new_topics, produce_batches

pytestmark = pytest.mark.broker


@pytest.fixture(autouse=True)
def _no_patches_leak() -> Iterator[None]:
    compat.remove_faust_patches()
    yield
    compat.remove_faust_patches()


def test_is_tansu_detects_the_embedded_broker(
    tansu: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    compat._clear_cache()
    assert compat.is_tansu(tansu.bootstrap_servers)
    monkeypatch.setenv(compat.IS_TANSU_ENV, "0")
    assert not compat.is_tansu(tansu.bootstrap_servers)
    assert compat.faust_settings_for(tansu.bootstrap_servers) == {}
    assert not compat.faust_patches_for(tansu.bootstrap_servers)
    monkeypatch.delenv(compat.IS_TANSU_ENV)
    assert compat.faust_settings_for(tansu.bootstrap_servers) == {
        "processing_guarantee": "at_least_once"
    }


def test_cluster_id_rule() -> None:
    assert compat.cluster_id_is_tansu("tansu_cluster")
    assert compat.cluster_id_is_tansu("tansu-embedded-0123abcd")
    assert not compat.cluster_id_is_tansu("MkU3OEVBNTcwNTJENDM2Qk")  # a Kafka KRaft id
    assert not compat.cluster_id_is_tansu(None)


def test_list_offsets_latest_is_short_and_fetch_highwater_corrects_it(
    tansu: EmbeddedBroker,
) -> None:
    topic = f"end-{uuid.uuid4().hex[:8]}"
    new_topics(tansu.bootstrap_servers, topic, partitions=2)
    produce_batches(tansu.bootstrap_servers, topic, batches=3, per_batch=5)  # partition 0 only
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)

    async def scenario() -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=tansu.bootstrap_servers)
        await consumer.start()
        try:
            reported = await consumer.end_offsets([p0, p1])
            return reported, await compat.corrected_end_offsets(consumer, reported)
        finally:
            await consumer.stop()

    reported, corrected = asyncio.run(scenario())
    # The quirk: the base offset of the last batch + 1 (10 + 1), not the log end (15).
    assert reported[p0] < 15
    assert corrected == {p0: 15, p1: 0}


def test_fetch_wait_patch_sets_the_faust_worker_consumer(tansu: EmbeddedBroker) -> None:
    async def created_fetch_wait(bootstrap: str) -> int:
        app = faust.App(f"fw-{uuid.uuid4().hex[:6]}", broker=f"kafka://{bootstrap}")
        thread = cast(Any, app.consumer)._thread
        consumer = thread._create_worker_consumer(app.transport)
        try:
            return int(consumer._fetch_max_wait_ms)
        finally:
            await consumer.stop()  # never started: only marks it closed
            thread.thread_loop.close()  # the consumer thread's own loop, never run

    other = "127.0.0.1:9"  # not a broker: the patch must leave its consumers alone
    assert asyncio.run(created_fetch_wait(tansu.bootstrap_servers)) == 1500  # faust's literal
    assert compat.faust_patches_for(tansu.bootstrap_servers)
    assert compat.faust_patches_active(tansu.bootstrap_servers)
    assert asyncio.run(created_fetch_wait(tansu.bootstrap_servers)) == (
        compat.TANSU_FETCH_MAX_WAIT_MS
    )
    assert asyncio.run(created_fetch_wait(other)) == 1500
    compat.remove_faust_patches()
    assert asyncio.run(created_fetch_wait(tansu.bootstrap_servers)) == 1500


def test_faust_table_recovery_is_stale_without_the_fix_and_right_with_it(
    tansu: EmbeddedBroker,
) -> None:
    """Two faust workers (fix off, fix on) recover the same changelog history of one key."""
    bootstrap = tansu.bootstrap_servers
    run = uuid.uuid4().hex[:8]
    apps = {"0": f"rec-off-{run}", "1": f"rec-on-{run}"}
    probe = f"probe-{run}"
    changelogs = [f"{app}-values-changelog" for app in apps.values()]
    new_topics(bootstrap, probe, *changelogs)
    for changelog in changelogs:
        # What a previous worker left: key "k" set to v0..v14, in 3 produce batches, as JSON.
        produce_batches(bootstrap, changelog, batches=3, per_batch=5, key=b'"k"', json=True)
    workers = {
        patch: subprocess.Popen(
            [sys.executable, "-m", "tests.broker.faust_table_worker", bootstrap, app, probe, patch],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for patch, app in apps.items()
    }
    try:
        answers = {patch: _answers(worker, bootstrap, probe) for patch, worker in workers.items()}
    finally:
        for worker in workers.values():
            worker.kill()
            worker.wait()
            assert worker.stdout is not None
            worker.stdout.close()
    # Without the fix faust stops recovery at the short end offset: a stale value.
    assert answers["0"]["VALUE"] != "k=v14"
    assert answers["0"]["FETCH_MAX_WAIT_MS"] == "1500"
    # With it, the last value, and the worker's stream consumer uses the short fetch wait.
    assert answers["1"]["VALUE"] == "k=v14"
    assert answers["1"]["FETCH_MAX_WAIT_MS"] == str(compat.TANSU_FETCH_MAX_WAIT_MS)


def _answers(worker: subprocess.Popen[str], bootstrap: str, probe: str) -> dict[str, str]:
    """Send probe records until the worker answers (it reads them only once recovered)."""
    # A faust worker of a new group may start its stream at the end and miss a probe written
    # before it joined, so probes are repeated; reading stdout blocks on the worker's answer.
    import threading

    assert worker.stdout is not None
    answered = threading.Event()
    producer = Producer({"bootstrap.servers": bootstrap})

    def keep_probing() -> None:
        while not answered.wait(0.5):
            producer.produce(probe, value=b"k")
            producer.flush(5)

    prober = threading.Thread(target=keep_probing, daemon=True)
    prober.start()
    answers: dict[str, str] = {}
    try:
        for line in worker.stdout:
            # faust's startup spinner writes to stdout without newlines: search, don't split.
            for name, value in re.findall(r"(VALUE|FETCH_MAX_WAIT_MS) (\S+)", line):
                answers[name] = value
            if "VALUE" in answers:
                break
    finally:
        answered.set()
        prober.join()
    assert "VALUE" in answers, f"worker exited with {worker.poll()} before answering"
    return answers


def test_aiokafka_idempotent_producer_fails_on_tansu(tansu: EmbeddedBroker) -> None:
    """Documents why faust_settings_for keeps exactly_once off: InitProducerId v0 is refused."""

    async def start_idempotent() -> BaseException | None:
        producer = AIOKafkaProducer(
            bootstrap_servers=tansu.bootstrap_servers,
            enable_idempotence=True,
            request_timeout_ms=5000,
        )
        try:
            await asyncio.wait_for(producer.start(), timeout=30)
            await asyncio.wait_for(producer.send_and_wait("idem", b"x"), timeout=30)
        except Exception as exc:
            return exc
        finally:
            await producer.stop()
        return None

    assert asyncio.run(start_idempotent()) is not None
