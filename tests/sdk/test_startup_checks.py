"""Start-up fails fast and says why: an unreachable broker, missing topics (nothing is written to
them, nothing creates them), partition counts that differ from the configuration."""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient

from agent_failover import cli
from agent_failover.config import AgentConfig, KafkaConfig, Topics
from agent_failover.errors import BrokerUnreachable, TopicSetupError
from agent_failover.models import Task
from agent_failover.sdk import Agent, TaskSubmitter
from agent_failover.topics import ensure_topics

pytestmark = pytest.mark.broker


def fresh_topics(**kwargs: int) -> Topics:
    return Topics(prefix=f"startup-{uuid.uuid4().hex[:10]}.", **kwargs)


def existing(bootstrap: str, prefix: str) -> set[str]:
    names = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=30).topics
    return {name for name in names if name.startswith(prefix)}


def test_an_agent_on_missing_topics_says_to_create_them(sdk_bootstrap: str) -> None:
    topics = fresh_topics()
    config = AgentConfig(kafka=KafkaConfig(sdk_bootstrap), agent_id="a-1", topics=topics)
    with pytest.raises(TopicSetupError, match="create the topic set with `agent-failover topics`"):
        Agent(config, lambda ctx: None).start()
    assert existing(sdk_bootstrap, topics.prefix) == set()


def test_an_agent_on_topics_with_other_partition_counts_names_the_variable(
    sdk_bootstrap: str,
) -> None:
    created = fresh_topics(agent_partitions=2)
    ensure_topics(sdk_bootstrap, created)
    config = AgentConfig(
        kafka=KafkaConfig(sdk_bootstrap),
        agent_id="a-2",
        topics=Topics(prefix=created.prefix, agent_partitions=4),
    )
    expected = "configuration says 4 (AGENT_FAILOVER_AGENT_PARTITIONS)"
    with pytest.raises(TopicSetupError, match=re.escape(expected)):
        Agent(config, lambda ctx: None).start()


def test_an_agent_without_a_broker_fails_within_the_connect_timeout() -> None:
    kafka = KafkaConfig("127.0.0.1:1", connect_timeout=0.5)
    expected = "cannot connect to 127.0.0.1:1 (KAFKA_BOOTSTRAP_SERVERS) within 0.5 s"
    with pytest.raises(BrokerUnreachable, match="^" + re.escape(expected)):
        Agent(AgentConfig(kafka=kafka, agent_id="a-3"), lambda ctx: None).start()


def test_the_submitter_writes_nothing_to_a_missing_task_topic(sdk_bootstrap: str) -> None:
    topics = fresh_topics()
    # Nor does it wait where no outcome will come: it needs the outcomes topic too.
    with pytest.raises(TopicSetupError, match=f"{topics.tasks}, {topics.outcomes} missing"):
        TaskSubmitter(sdk_bootstrap, topics).submit(Task(task_id="t-1", task_type="demo"))
    assert existing(sdk_bootstrap, topics.prefix) == set()


@pytest.fixture
def cli_env(sdk_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Topics]:
    """The command line's environment: this session's broker and a fresh topic prefix; the
    logging set-up the command changes is restored afterwards."""
    for name in list(os.environ):
        if name.startswith("AGENT_FAILOVER_"):
            monkeypatch.delenv(name)
    topics = fresh_topics()
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", sdk_bootstrap)
    monkeypatch.setenv("AGENT_FAILOVER_TOPIC_PREFIX", topics.prefix)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield topics
    root.handlers[:] = handlers
    root.setLevel(level)


def test_submit_before_topics_exits_with_the_topics_code_then_works_after_them(
    cli_env: Topics, sdk_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["submit", "--type", "t", "--log-level", "WARNING"]) == cli.EXIT_TOPICS
    out, err = capsys.readouterr()
    assert f"{cli_env.tasks}, {cli_env.outcomes} missing" in err
    assert "`agent-failover topics`" in err
    assert out == "" and existing(sdk_bootstrap, cli_env.prefix) == set()

    assert cli.main(["topics", "--log-level", "WARNING"]) == cli.EXIT_OK
    assert cli.main(["submit", "--type", "t", "--id", "t-9", "--log-level", "WARNING"]) == 0
    out, _ = capsys.readouterr()
    assert out.splitlines()[-1].startswith("t-9  partition ")
