"""Logging: rate-limited librdkafka lines, the JSON format, masked secrets, one set-up."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from agent_failover.config import KafkaConfig
from agent_failover.dev.waiting import eventually
from agent_failover.errors import ConfigError
from agent_failover.logs import (
    BURST,
    RateLimitFilter,
    kafka_log_settings,
    setup_logging,
)
from agent_failover.sdk.kafka import producer_conf


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def limited() -> Iterator[tuple[logging.Logger, Collect, Clock]]:
    clock = Clock()
    logger = logging.getLogger("tests.logs.limited")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    collect = Collect()
    logger.addHandler(collect)
    limit = RateLimitFilter(burst=3, interval=10.0, clock=clock)
    logger.addFilter(limit)
    yield logger, collect, clock
    logger.removeFilter(limit)
    logger.removeHandler(collect)


def test_rate_limit_lets_a_burst_through_then_summarises(
    limited: tuple[logging.Logger, Collect, Clock],
) -> None:
    logger, collect, clock = limited
    for ms in range(100):  # differing only in digits: the same message
        logger.error("connect to 127.0.0.1:1 failed (after %dms in state CONNECT)", ms)
    assert len(collect.lines) == 3
    logger.warning("another message")  # not affected by the first one's limit
    assert collect.lines[-1] == "another message"
    clock.now += 10.0
    logger.error("connect to 127.0.0.1:1 failed (after 5ms in state CONNECT)")
    assert collect.lines[-2] == (
        "suppressed 97 similar messages in the last 10 s: "
        "connect to #.#.#.#:# failed (after #ms in state CONNECT)"
    )
    assert collect.lines[-1] == "connect to 127.0.0.1:1 failed (after 5ms in state CONNECT)"


def test_rate_limit_says_nothing_when_nothing_was_dropped(
    limited: tuple[logging.Logger, Collect, Clock],
) -> None:
    logger, collect, clock = limited
    for _ in range(2):
        logger.info("rebalanced")
        clock.now += 60
    assert collect.lines == ["rebalanced", "rebalanced"]


def test_librdkafka_lines_go_through_python_logging_rate_limited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Nothing listens on port 1: every client logs a refused connection per reconnect attempt.
    producer = Producer(producer_conf(KafkaConfig("127.0.0.1:1"), "test-logs"))
    name = "agent_failover.librdkafka.producer"
    with caplog.at_level(logging.DEBUG, logger=name):
        limit = next(f for f in logging.getLogger(name).filters if isinstance(f, RateLimitFilter))
        before = dict(limit._windows)

        def dropped_some() -> bool:
            producer.poll(0.1)  # log lines are served by poll()
            return any(w[2] > 0 for k, w in limit._windows.items() if k not in before)

        eventually(dropped_some, 60, "librdkafka to repeat a line past the burst")
    refused = [r for r in caplog.records if r.name == name and "refused" in r.getMessage()]
    assert 0 < len(refused) <= BURST


def test_kafka_log_settings_attach_the_limit_once() -> None:
    first = kafka_log_settings("tests-role")["logger"]
    second = kafka_log_settings("tests-role")["logger"]
    assert first is second
    assert sum(isinstance(f, RateLimitFilter) for f in first.filters) == 1


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_json_format_is_one_object_per_line_and_masks_secrets() -> None:
    out = io.StringIO()
    env = {"AGENT_FAILOVER_KAFKA_SASL_PASSWORD": 'pa"ss-w0rd'}
    assert setup_logging("debug", "json", env=env, stream=out) == "json"
    log = logging.getLogger("tests.logs.json")
    log.debug("connecting with %s", 'pa"ss-w0rd')
    try:
        raise RuntimeError('bad password pa"ss-w0rd')
    except RuntimeError:
        log.exception("failed")
    lines = out.getvalue().splitlines()
    entries = [orjson.loads(line) for line in lines]
    assert [e["level"] for e in entries] == ["DEBUG", "ERROR"]
    assert entries[0]["logger"] == "tests.logs.json"
    assert entries[0]["message"] == "connecting with ***"
    assert "RuntimeError" in entries[1]["exception"]
    assert "ss-w0rd" not in out.getvalue()


@pytest.mark.usefixtures("restore_logging")
def test_signing_keys_are_masked_given_directly_or_as_a_file(tmp_path: Path) -> None:
    key_file = tmp_path / "signing-key"
    key_file.write_text("key-from-a-mounted-secret-0123\n")
    env = {
        "AGENT_FAILOVER_SIGNING_KEY_FILE": str(key_file),
        "AGENT_FAILOVER_SIGNING_KEY_PREVIOUS": "the-previous-key-0123456789",
    }
    out = io.StringIO()
    setup_logging("debug", "text", env=env, stream=out)
    log = logging.getLogger("tests.logs.keys")
    log.debug("keys %s and %s", "key-from-a-mounted-secret-0123", "the-previous-key-0123456789")
    assert "keys *** and ***" in out.getvalue()


@pytest.mark.usefixtures("restore_logging")
def test_setup_reads_the_environment_and_names_a_bad_variable() -> None:
    out = io.StringIO()
    setup_logging(env={"AGENT_FAILOVER_LOG_LEVEL": "warning"}, stream=out)
    logging.getLogger("tests.logs.env").info("hidden")
    logging.getLogger("tests.logs.env").warning("shown")
    assert out.getvalue().count("\n") == 1
    assert " WARNING tests.logs.env: shown" in out.getvalue()
    with pytest.raises(ConfigError, match=r"^AGENT_FAILOVER_LOG_FORMAT must be one of text, json"):
        setup_logging(env={"AGENT_FAILOVER_LOG_FORMAT": "xml"}, stream=out)


@pytest.mark.usefixtures("restore_logging")
def test_the_process_handler_limits_kafka_clients_only() -> None:
    out = io.StringIO()
    setup_logging("INFO", "text", env={}, stream=out)
    for name in ("aiokafka.conn", "agent_failover.streams.liveness.librdkafka", "tests.logs.other"):
        for attempt in range(20):
            logging.getLogger(name).error("Unable connect to node with id %d", attempt)
    counts = {
        name: sum(f" {name}: " in line for line in out.getvalue().splitlines())
        for name in (
            "aiokafka.conn",
            "agent_failover.streams.liveness.librdkafka",
            "tests.logs.other",
        )
    }
    assert counts == {
        "aiokafka.conn": BURST,
        "agent_failover.streams.liveness.librdkafka": BURST,
        "tests.logs.other": 20,
    }


@pytest.mark.usefixtures("restore_logging")
def test_the_takeover_benchmark_reads_the_monitors_text_log(tmp_path: Path) -> None:
    from bench.takeover import _log_events

    out = io.StringIO()
    setup_logging("INFO", "text", env={}, stream=out)
    logging.getLogger("agent_failover.streams.ownership").info(
        "took over partition %d (grace %.1fs)", 3, 0.0
    )
    logging.getLogger("agent_failover.streams.monitor").info(
        "deciding on partitions %s (was %s)", [3, 4], "assigning"
    )
    log = tmp_path / "monitor.log"
    log.write_text(out.getvalue())
    taken, deciding = _log_events(log, 0.0)
    assert list(taken) == [3]
    assert [ps for _, ps in deciding] == [{3, 4}]
