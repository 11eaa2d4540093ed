"""End-to-end scenarios: real monitor and agent processes against the session's broker."""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from agent_failover import models as m
from agent_failover.broker.select import BrokerHandle
from agent_failover.config import KafkaConfig, Topics
from agent_failover.dev.cluster import LocalCluster
from agent_failover.dev.ledger import LedgerReport, build_report
from agent_failover.dev.observer import Observer
from agent_failover.dev.processes import Proc
from agent_failover.dev.victim import busiest_agent, reached_step
from agent_failover.dev.waiting import eventually
from agent_failover.sdk import TaskSubmitter
from agent_failover.topics import TopicSpec, ensure_topics

T = TypeVar("T")


@dataclasses.dataclass
class Scenario:
    """A topic set, a results topic, a process supervisor and an observer, all fresh."""

    kafka: KafkaConfig
    topics: Topics
    results_topic: str
    cluster: LocalCluster
    observer: Observer
    task_steps: dict[str, int] = dataclasses.field(default_factory=dict)

    def wait_monitor_ready(self) -> None:
        self.wait(self.observer.monitor_ready, 60, "the monitor to own every partition")

    def start_agents(self, names: list[str]) -> dict[str, Proc]:
        procs = {name: self.cluster.start_agent(name) for name in names}
        self.wait(
            lambda: (
                {e.agent_id for e in self.observer.events(m.EventKind.AGENT_STARTED)} >= set(names)
            ),
            60,
            "agents to start",
        )
        return procs

    def submit(self, count: int, steps: int) -> list[str]:
        ids = [f"task-{len(self.task_steps) + i:02d}" for i in range(count)]
        with TaskSubmitter(self.kafka, self.topics) as submitter:
            for task_id in ids:
                submitter.submit(
                    m.Task(task_id=task_id, task_type="demo", payload={"steps": steps})
                )
                self.task_steps[task_id] = steps
        return ids

    def held_by(self, agent_id: str) -> set[str]:
        """Tasks the agent claimed that are not completed."""
        return set(self.observer.holdings().get(agent_id, {}))

    def busy_agent(self, agents: list[str], min_step: int) -> str:
        """Wait for an agent holding a task checkpointed at ``min_step`` or later; the busiest."""
        ready = reached_step(min_step)

        def busiest() -> str | None:
            holdings = self.observer.holdings()
            return busiest_agent({a: holdings.get(a, {}) for a in agents}, ready)

        return self.wait(busiest, 60, f"a task to reach step {min_step}")

    def wait(self, check: Callable[[], T | None], timeout: float, what: str) -> T:
        """:func:`eventually`, with the tail of every process's log in the failure."""
        try:
            return eventually(check, timeout, what)
        except TimeoutError as exc:
            logs = "\n".join(
                f"--- {p.name} ---\n{p.log_tail(15)}" for p in self.cluster.procs.values()
            )
            raise AssertionError(f"{exc}\n{logs}") from None

    def wait_all_completed(self, timeout: float = 90) -> None:
        """Until every task has its outcome (the monitor published it after the completion)."""
        self.wait(
            lambda: self.observer.outcomes().keys() >= self.task_steps.keys(),
            timeout,
            "every task's outcome",
        )

    def ledger(self) -> LedgerReport:
        return build_report(self.kafka, self.results_topic, self.topics, self.task_steps)


@pytest.fixture
def scenario_factory(broker: BrokerHandle, tmp_path: Path) -> Iterator[Callable[..., Scenario]]:
    """Build a scenario; keyword arguments become AGENT_FAILOVER_* settings of every process."""
    made: list[Scenario] = []

    def make(**settings: str) -> Scenario:
        run_id = uuid.uuid4().hex[:8]
        topics = Topics(
            prefix=f"t{run_id}.", agent_partitions=4, task_partitions=4, checkpoint_partitions=4
        )
        results = f"{topics.prefix}results"
        # The fleet signs: every scenario also shows that signed records flow end to end.
        signing_key = secrets.token_urlsafe(32)
        kafka = KafkaConfig(bootstrap_servers=broker.bootstrap_servers, signing_key=signing_key)
        ensure_topics(kafka, topics)
        ensure_topics(kafka, topics, specs=[TopicSpec(results, 4, {}, "results")])
        env = {
            "AGENT_FAILOVER_HEARTBEAT_INTERVAL": "0.5",
            "AGENT_FAILOVER_HEARTBEAT_TIMEOUT": "2.0",
            "AGENT_FAILOVER_CAPACITY": "6",
            "AGENT_FAILOVER_DEMO_RESULTS_TOPIC": results,
            "AGENT_FAILOVER_DEMO_STEP_SECONDS": "0.2,0.3",
            "AGENT_FAILOVER_MONITOR_APP_ID": f"af-test-{run_id}",
            "AGENT_FAILOVER_METRICS_PORT": "0",
            "AGENT_FAILOVER_MONITOR_DATA_DIR": str(tmp_path / "monitor-data"),
            "AGENT_FAILOVER_SIGNING_KEY": signing_key,
        }
        env.update({f"AGENT_FAILOVER_{k.upper()}": v for k, v in settings.items()})
        cluster = LocalCluster(broker.bootstrap_servers, topics, tmp_path / "logs", env=env)
        observer = Observer(kafka, topics, results).start()
        scenario = Scenario(kafka, topics, results, cluster, observer)
        made.append(scenario)
        return scenario

    yield make
    for scenario in made:
        scenario.cluster.stop_all()
        scenario.observer.stop()
