"""One soak run: broker, topics, fleet, waves of tasks, faults, the end, and the verdict.

1. Start the broker (embedded Tansu unless ``KAFKA_BOOTSTRAP_SERVERS`` is set, or the one given),
   create a fresh topic set, start 2 monitor workers and the agent slots.
2. Once the workers own every partition and every agent announced itself, follow the schedule:
   submit each wave, fire each fault, keep every slot filled.
3. Drain: wait until every task completed (or the profile's drain timeout).
4. The cut: SIGKILL every process at once, so nothing is written after it; read the ledger and
   the topics to their high watermark; judge.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from agent_failover import models as m
from agent_failover.broker.select import broker_from_env
from agent_failover.config import KafkaConfig, Topics
from agent_failover.dev.cluster import LocalCluster
from agent_failover.dev.soak.evidence import Evidence, read_back
from agent_failover.dev.soak.faults import Injector
from agent_failover.dev.soak.fleet import Fleet
from agent_failover.dev.soak.report import SoakResult
from agent_failover.dev.soak.schedule import Profile, Schedule, build_schedule
from agent_failover.dev.soak.verdict import judge_soak
from agent_failover.dev.soak.watch import Watch
from agent_failover.dev.waiting import eventually
from agent_failover.sdk import TaskSubmitter
from agent_failover.topics import ensure_topics

#: Seconds between two turns of the run's loop (submit, fire, refill slots).
TICK = 0.05
#: Seconds the fleet gets to be ready: monitor workers own every partition, agents announced.
READY_TIMEOUT = 120.0
#: Partitions of every topic of a soak: two workers share the agent partitions.
PARTITIONS = 4

Say = Callable[[str], None]


def run_soak(
    seed: int,
    profile: Profile,
    *,
    log_dir: Path | None = None,
    bootstrap_servers: str | None = None,
    say: Say | None = None,
) -> SoakResult:
    """Run the soak of ``seed`` and judge it.

    ``bootstrap_servers``: the broker to use (default: chosen from the environment, like the
    demo). ``say``: progress lines (default: printed). Raises :class:`TimeoutError` if the fleet
    does not get ready, :class:`BrokerError` if the broker fails.
    """
    schedule = build_schedule(seed, profile)
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix=f"agent-failover-soak-{seed}-"))
    tell = say or (lambda line: print(line, flush=True))
    began = time.monotonic()
    if bootstrap_servers is None:
        with broker_from_env(log_dir=log_dir) as broker:
            evidence = _run(schedule, broker.bootstrap_servers, log_dir, tell)
    else:
        evidence = _run(schedule, bootstrap_servers, log_dir, tell)
    verdict = judge_soak(evidence)
    return SoakResult(evidence, verdict, log_dir, time.monotonic() - began)


def _run(schedule: Schedule, bootstrap: str, log_dir: Path, say: Say) -> Evidence:
    profile = schedule.profile
    run_id = uuid.uuid4().hex[:6]
    topics = Topics(
        prefix=f"af.soak-{run_id}.",
        agent_partitions=PARTITIONS,
        task_partitions=PARTITIONS,
        checkpoint_partitions=PARTITIONS,
    )
    kafka = KafkaConfig(bootstrap_servers=bootstrap)
    ensure_topics(kafka, topics)
    env = {
        "AGENT_FAILOVER_HEARTBEAT_INTERVAL": str(profile.heartbeat_interval),
        "AGENT_FAILOVER_HEARTBEAT_TIMEOUT": str(profile.heartbeat_timeout),
        "AGENT_FAILOVER_DEMO_STEP_SECONDS": ",".join(map(str, profile.step_seconds)),
        "AGENT_FAILOVER_MONITOR_APP_ID": f"af-soak-monitor-{run_id}",
        "AGENT_FAILOVER_METRICS_PORT": "0",
    }
    ledger_dir = log_dir / "ledger"
    say(
        f"soak seed {schedule.seed} ({profile.name}): {profile.agents} agents, 2 monitor "
        f"workers, {len(schedule.task_steps())} tasks in {len(schedule.waves)} waves, "
        f"{len(schedule.faults)} faults; broker {bootstrap}, topics {topics.prefix}*, "
        f"logs {log_dir}"
    )
    watch = Watch(kafka, topics).start()
    try:
        with LocalCluster(bootstrap, topics, log_dir / "logs", env=env) as cluster:
            fleet = Fleet(cluster, schedule, ledger_dir, log_dir / "monitor-data")
            fleet.start()
            _until(fleet, lambda: _ready(fleet, watch), READY_TIMEOUT, "the fleet to be ready")
            started_at, t0 = time.time(), time.monotonic()
            load = os.getloadavg()[0]
            say(f"  +{0.0:6.1f}s  fleet ready (load {load:.1f})")
            injector = Injector(fleet, watch, schedule.faults, t0, PARTITIONS, say)
            _follow(schedule, fleet, injector, kafka, topics, t0, say)
            tasks = set(schedule.task_steps())
            try:
                _until(fleet, lambda: watch.done(tasks), profile.drain_timeout, "every task")
                drained = True
            except TimeoutError:
                drained = False
            cut_at = time.time()
            say(
                f"  +{cut_at - started_at:6.1f}s  "
                + ("every task completed" if drained else "drain timeout: not every task done")
                + "; killing every process"
            )
            fleet.kill_all()
    finally:
        watch.stop()
    return read_back(
        kafka,
        topics,
        ledger_dir,
        schedule=schedule,
        started_at=started_at,
        cut_at=cut_at,
        drained=drained,
        processes=fleet.records,
        faults=injector.records,
        load=(load, os.getloadavg()[0]),
    )


def _ready(fleet: Fleet, watch: Watch) -> bool:
    agents = [fleet.agent(slot) for slot in fleet.agent_slots()]
    return watch.monitored(PARTITIONS) and all(
        watch.started_since(a.agent_id or "", a.spawned_at) for a in agents
    )


def _until(fleet: Fleet, check: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait for ``check`` while keeping the fleet's slots filled."""

    def step() -> bool:
        fleet.supervise()
        return check()

    eventually(step, timeout, what)


def _follow(
    schedule: Schedule,
    fleet: Fleet,
    injector: Injector,
    kafka: KafkaConfig,
    topics: Topics,
    t0: float,
    say: Say,
) -> None:
    """Submit the waves and fire the faults at their times, refilling slots meanwhile."""
    waves = list(schedule.waves)
    with TaskSubmitter(kafka, topics) as submitter:
        while waves or injector.pending:
            if waves and time.monotonic() >= t0 + waves[0].at:
                wave = waves.pop(0)
                submitter.submit_many(
                    m.Task(task_id=t.task_id, task_type="soak", payload={"steps": t.steps})
                    for t in wave.tasks
                )
                say(f"  +{time.monotonic() - t0:6.1f}s  submitted {len(wave.tasks)} tasks")
            injector.run_due()
            fleet.supervise()
            time.sleep(TICK)  # the schedule's clock tick: what is due is decided by the clock
