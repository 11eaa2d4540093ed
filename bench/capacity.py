"""Monitor capacity: heartbeats per second one monitor worker sustains, the knee, then two workers.

Simulated fleets (``bench.fleet``, up to 10,000 agents per process, 1 Hz each, batched produce)
ramp the number of agents level by level. At each level, after ``capacity_level_s`` of steady
beating, a few simulated agents stop; the level is *sustained* if every one of them is fenced
within ``heartbeat_timeout + 1 s`` of its last heartbeat and no live agent was fenced. The knee is
the highest sustained level before the first failure. The monitor's CPU is sampled at each level.
At the end of the ramp the monitor is profiled with py-spy (at the first level not sustained, if
any: the fleets cannot shrink back to the knee).
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from agent_failover import models as m
from agent_failover.config import KafkaConfig, Topics
from agent_failover.dev.cluster import LocalCluster
from agent_failover.dev.processes import Proc, spawn
from agent_failover.dev.reading import TopicTail
from agent_failover.dev.waiting import eventually
from agent_failover.errors import CodecError
from agent_failover.topics import ensure_topics
from bench.common import DOCS, ROOT, BenchContext, cpu_seconds, dist, say

PER_PROCESS = 10_000
TIMEOUT = 3.0
INTERVAL = 1.0


@dataclasses.dataclass
class Fleet:
    """One simulated-fleet process and its stdin/stdout control channel."""

    proc: Proc
    agents: int = 0

    def ask(self, line: str, timeout: float = 60.0) -> dict[str, Any]:
        popen = self.proc.popen
        assert popen.stdin is not None and popen.stdout is not None
        popen.stdin.write((line + "\n").encode())
        popen.stdin.flush()
        import select

        ready, _, _ = select.select([popen.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f"fleet did not answer {line!r} within {timeout} s")
        answer: dict[str, Any] = orjson.loads(popen.stdout.readline())
        return answer


class Setup:
    """Topics, monitor worker(s) and fleets for one ramp."""

    def __init__(self, ctx: BenchContext, name: str, workers: int) -> None:
        self.ctx = ctx
        self.name = name
        self.topics = Topics(prefix=ctx.prefix(name))
        ensure_topics(KafkaConfig(bootstrap_servers=ctx.bootstrap), self.topics)
        self.log_dir = ctx.logs(f"capacity-{name}")
        env = {
            "AGENT_FAILOVER_HEARTBEAT_TIMEOUT": str(TIMEOUT),
            "AGENT_FAILOVER_MONITOR_APP_ID": f"af-bench-{name}-{ctx.run_id}",
            "AGENT_FAILOVER_METRICS_PORT": "0",
            "AGENT_FAILOVER_MONITOR_DATA_DIR": str(self.log_dir / "monitor-data"),
            "AGENT_FAILOVER_LOG_LEVEL": "WARNING",
        }
        if ctx.is_tansu:
            env["AGENT_FAILOVER_FETCH_WAIT_MAX_MS"] = "10"
        self.cluster = LocalCluster(ctx.bootstrap, self.topics, self.log_dir, env=env)
        self.monitors: list[Proc] = [
            self.cluster.start_monitor(
                f"monitor-{i}", {"AGENT_FAILOVER_MONITOR_DATA_DIR": str(self.log_dir / f"data-{i}")}
            )
            for i in range(workers)
        ]
        self.fleets: list[Fleet] = []
        self.tail = TopicTail(ctx.bootstrap, [self.topics.control]).start()

    def close(self) -> None:
        for f in self.fleets:
            with contextlib.suppress(Exception):
                f.ask("quit", 5)
            f.proc.signal(signal.SIGKILL)
            f.proc.wait(5)
        self.cluster.stop_all(10)
        self.tail.stop()

    def agents(self) -> int:
        return sum(f.agents for f in self.fleets)

    def grow(self, target: int) -> None:
        """Add simulated agents until ``target`` (new fleet processes as needed)."""
        while self.agents() < target:
            if not self.fleets or self.fleets[-1].agents >= PER_PROCESS:
                name = f"fleet-{len(self.fleets)}"
                proc = spawn(
                    name,
                    [
                        "-m",
                        "bench.fleet",
                        self.ctx.bootstrap,
                        self.topics.prefix,
                        f"f{len(self.fleets)}",
                        str(INTERVAL),
                    ],
                    self.log_dir / f"{name}.log",
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                )
                self.fleets.append(Fleet(proc))
            fleet = self.fleets[-1]
            n = min(PER_PROCESS - fleet.agents, target - self.agents())
            fleet.ask(f"add {n}", 120)
            fleet.agents += n

    def fences(self) -> dict[tuple[str, int], float]:
        out: dict[tuple[str, int], float] = {}
        for rec in self.tail.snapshot():
            try:
                ctl = m.Control.decode(rec.value)
            except CodecError:
                continue
            if ctl.kind is m.ControlKind.FENCE:
                out.setdefault((ctl.agent_id, ctl.epoch), ctl.issued_at)
        return out

    def monitor_cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.monitors if p.alive)


def ramp(ctx: BenchContext, name: str, workers: int, levels: tuple[int, ...]) -> dict[str, Any]:
    """Ramp through ``levels``; stop after the first level that is not sustained."""
    prof = ctx.profile
    setup = Setup(ctx, name, workers)
    out: dict[str, Any] = {"workers": workers, "timeout_s": TIMEOUT, "levels": []}
    try:
        time.sleep(8)  # the monitor joins its group and takes its partitions
        killed: dict[tuple[str, int], float] = {}
        for level in levels:
            t_grow = time.monotonic()
            setup.grow(level)
            grow_s = time.monotonic() - t_grow
            # Let the monitor take in the agent_started burst and its grace period pass.
            time.sleep(max(2 * TIMEOUT, 2.0))
            for f in setup.fleets:
                f.ask("stats")
            steady_from = time.time()
            cpu0, t0 = setup.monitor_cpu(), time.monotonic()
            time.sleep(prof.capacity_level_s)
            rate = sum(f.ask("stats")["rate"] for f in setup.fleets)
            cpu = (setup.monitor_cpu() - cpu0) / (time.monotonic() - t0) * 100
            per = max(1, prof.capacity_kills_per_level // max(1, len(setup.fleets)))
            victims: dict[tuple[str, int], float] = {}
            for f in setup.fleets:
                for v in f.ask(f"kill {per}")["killed"]:
                    victims[(v["agent_id"], v["epoch"])] = v["last_sent"]
            killed.update(victims)
            # Missed fences are a result, not an error: measure what came within the bound.
            with contextlib.suppress(TimeoutError):
                eventually(
                    lambda wanted=set(victims): wanted <= set(setup.fences()),
                    TIMEOUT + 6,
                    "the stopped agents to be fenced",
                    interval=0.1,
                )
            fences = setup.fences()
            detection = [fences[k] - t for k, t in victims.items() if k in fences]
            missed = [k[0] for k in victims if k not in fences]
            # Live agents fenced: during the steady window (counts against the level) and while
            # the new agents were being announced (reported apart).
            false = [k[0] for k, t in fences.items() if k not in killed and t >= steady_from]
            false_growing = [k[0] for k, t in fences.items() if k not in killed and t < steady_from]
            for k in fences:
                killed.setdefault(k, 0.0)  # count each false fence once
            worst = max(detection) if detection else None
            ok = not missed and not false and worst is not None and worst <= TIMEOUT + 1.0
            alive = all(p.alive for p in setup.monitors)
            row = {
                "agents": setup.agents(),
                "heartbeats_per_s": round(rate),
                "monitor_cpu_pct": round(cpu, 1),
                "detection_s": dist(detection),
                "killed": len(victims),
                "missed": len(missed),
                "false_fences": len(false),
                "false_fences_while_growing": len(false_growing),
                "grow_s": round(grow_s, 1),
                "sustained": ok and alive,
            }
            out["levels"].append(row)
            say(
                f"  capacity {name}: {row['agents']} agents, {rate:,.0f} hb/s sent, monitor CPU "
                f"{cpu:.0f}%, detection max {worst if worst is None else round(worst, 2)} s, "
                f"missed {len(missed)}, false fences {len(false)} -> "
                f"{'sustained' if row['sustained'] else 'NOT sustained'}"
            )
            if not row["sustained"]:
                break
        sustained = [r for r in out["levels"] if r["sustained"]]
        out["knee_heartbeats_per_s"] = max((r["heartbeats_per_s"] for r in sustained), default=0)
        out["first_failed"] = next((r for r in out["levels"] if not r["sustained"]), None)
        if workers == 1 and sustained:
            # The fleets cannot shrink: after a failed level the monitor still serves that many
            # agents, so the profile is labelled with the agents beating now, not the knee.
            out["profile"] = profile_monitor(ctx, setup, setup.agents())
    finally:
        setup.close()
    return out


def profile_monitor(ctx: BenchContext, setup: Setup, agents: int) -> dict[str, Any]:
    """py-spy the monitor at the knee; summarise where its CPU goes."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        return {"error": "py-spy is not installed (pip install '.[bench]')"}
    raw = setup.log_dir / "monitor-profile.txt"
    pid = setup.monitors[0].pid
    say(f"  profiling the monitor (pid {pid}) at {agents} agents for {ctx.profile.profile_s:.0f} s")
    res = subprocess.run(
        [
            pyspy,
            "record",
            "--pid",
            str(pid),
            "-d",
            str(int(ctx.profile.profile_s)),
            "-r",
            "100",
            "-f",
            "raw",
            "-o",
            str(raw),
            "--nonblocking",
        ],
        capture_output=True,
        text=True,
        timeout=ctx.profile.profile_s + 60,
    )
    if res.returncode != 0 or not raw.exists():
        return {"error": f"py-spy failed: {(res.stderr or res.stdout)[-500:]}"}
    summary = summarise_profile(raw.read_text())
    summary["agents"] = agents
    DOCS.mkdir(parents=True, exist_ok=True)
    lines = sorted(raw.read_text().splitlines(), key=lambda ln: -int(ln.rsplit(" ", 1)[1]))
    (DOCS / "monitor-profile.txt").write_text("\n".join(lines[:400]) + "\n")
    return summary


def _frame_module(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)".
    path = frame.rsplit("(", 1)[-1].rstrip(")").rsplit(":", 1)[0]
    for marker, label in (
        ("streams/", "streams (monitor code)"),
        ("agent_failover/", "agent_failover"),
        ("faust/", "faust"),
        ("mode/", "mode"),
        ("aiokafka/", "aiokafka"),
        ("confluent_kafka/", "confluent_kafka"),
        ("orjson", "orjson"),
        ("asyncio/", "asyncio"),
        ("threading", "threading"),
        ("selectors", "selectors"),
    ):
        if marker in path:
            return label
    return "other"


def summarise_profile(raw: str) -> dict[str, Any]:
    """Self time by function and by package, inclusive time of the monitor's own functions."""
    self_fn: Counter[str] = Counter()
    self_mod: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_s)
        total += count
        frames = stack.split(";")
        leaf = frames[-1]
        self_fn[leaf.rsplit(":", 1)[0] + ")" if ":" in leaf else leaf] += count
        self_mod[_frame_module(leaf)] += count
        for fr in {f.rsplit(":", 1)[0] + ")" if ":" in f else f for f in frames}:
            if "streams/" in fr:
                incl[fr] += count
    if not total:
        return {"samples": 0}

    def pct(c: Counter[str], n: int) -> list[list[Any]]:
        return [[k, round(v / total * 100, 1)] for k, v in c.most_common(n)]

    return {
        "samples": total,
        "self_by_package_pct": pct(self_mod, 12),
        "self_by_function_pct": pct(self_fn, 15),
        "inclusive_monitor_functions_pct": pct(incl, 15),
    }


def run(ctx: BenchContext) -> dict[str, Any]:
    levels = ctx.profile.capacity_levels
    say(f"capacity: ramp {levels} simulated agents at 1 Hz, heartbeat timeout {TIMEOUT} s")
    one = ramp(ctx, "cap1", 1, levels)
    # Two workers: start from the level below one worker's first failure.
    start = [lv for lv in levels if lv >= one["knee_heartbeats_per_s"] * 0.9] or list(levels)
    two = ramp(ctx, "cap2", 2, tuple(start))
    return {"one_worker": one, "two_workers": two}
