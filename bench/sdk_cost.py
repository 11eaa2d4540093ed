"""SDK cost: checkpoint latency (acks=all), heartbeat CPU and memory per agent.

* Checkpoint latency: one agent (``agent_failover.dev.worker``) gets a ``bench.checkpoint`` task
  and calls ``ctx.checkpoint()`` back to back, timing each call (write + broker acknowledgement,
  idempotent producer, ``acks=all``) with ``perf_counter``; 200-byte state.
* Heartbeat CPU per agent: an idle agent process (no task) at 1 s and at 0.25 s heartbeats, CPU
  seconds (user + system) over a sampling window, as a percentage of one core.
* Memory per agent: the idle agent's RSS and PSS, and the same for a bare interpreter that only
  imports the SDK and confluent-kafka (the difference is what running an agent costs).

The checkpoint task is placed by a monitor worker, as any new work is; the idle agents need none.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from typing import Any

import orjson

from agent_failover import models as m
from agent_failover.config import KafkaConfig, Topics
from agent_failover.dev.cluster import LocalCluster
from agent_failover.dev.processes import spawn
from agent_failover.dev.waiting import eventually
from agent_failover.sdk import TaskSubmitter
from agent_failover.topics import ensure_topics
from bench.common import ROOT, BenchContext, cpu_seconds, dist, memory_bytes, say

_BARE = "import agent_failover.sdk, confluent_kafka, time; time.sleep(600)"


def _cluster(ctx: BenchContext, name: str, interval: float) -> tuple[LocalCluster, Topics]:
    topics = Topics(prefix=ctx.prefix(name))
    ensure_topics(KafkaConfig(bootstrap_servers=ctx.bootstrap), topics)
    env = {
        "AGENT_FAILOVER_HEARTBEAT_INTERVAL": str(interval),
        "AGENT_FAILOVER_CAPACITY": "1",
        "AGENT_FAILOVER_LOG_LEVEL": "WARNING",
        "AGENT_FAILOVER_MONITOR_APP_ID": f"{topics.prefix}monitor",
        "AGENT_FAILOVER_MONITOR_DATA_DIR": str(ctx.logs(f"sdk-{name}") / "monitor-data"),
        "AGENT_FAILOVER_METRICS_PORT": "0",
    }
    if ctx.is_tansu:
        env["AGENT_FAILOVER_FETCH_WAIT_MAX_MS"] = "10"
    return LocalCluster(ctx.bootstrap, topics, ctx.logs(f"sdk-{name}"), env=env), topics


def checkpoint_latency(ctx: BenchContext) -> dict[str, Any]:
    n = ctx.profile.checkpoints
    say(f"sdk: checkpoint latency, {n} checkpoints (acks=all)")
    cluster, topics = _cluster(ctx, "ckpt", 1.0)
    out_path = cluster.log_dir / f"latencies-{uuid.uuid4().hex[:6]}.json"
    with cluster:
        cluster.start_monitor()
        cluster.start_agent("ck-1")
        with TaskSubmitter(KafkaConfig(bootstrap_servers=ctx.bootstrap), topics) as sub:
            sub.submit(
                m.Task(
                    task_id="ckpt-1",
                    task_type="bench.checkpoint",
                    payload={"n": n, "out": str(out_path), "state_bytes": 200},
                )
            )
        try:
            eventually(out_path.exists, 60 + n * 0.05, "the checkpoint task to finish")
        except TimeoutError as exc:
            return {"error": str(exc)}
        lat = orjson.loads(out_path.read_bytes())  # written aside and renamed: complete
    # The first few include connection set-up; report them apart.
    warm = lat[5:]
    d = dist([x * 1000 for x in warm])
    say(f"  checkpoint p50 {d['p50']:.2f} ms, p99 {d['p99']:.2f} ms, max {d['max']:.2f} ms")
    return {
        "n": len(warm),
        "warmup_dropped": 5,
        "latency_ms": d,
        "samples_ms": [round(x * 1000, 3) for x in warm],
    }


def _sample(pid: int, seconds: float) -> tuple[float, int, int | None]:
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)  # the sampling window
    c1, t1 = cpu_seconds(pid), time.monotonic()
    return (c1 - c0) / (t1 - t0) * 100.0, *memory_bytes(pid)


def heartbeat_cost(ctx: BenchContext) -> dict[str, Any]:
    window = ctx.profile.cpu_sample_s
    out: dict[str, Any] = {"window_s": window}
    logs = ctx.logs("sdk-bare")
    bare = spawn("bare", ["-c", _BARE], logs / "bare.log", cwd=ROOT)
    try:
        time.sleep(3)  # imports done: the steady state is measured
        cpu, rss, pss = _sample(bare.pid, min(5.0, window))
        out["bare_interpreter"] = {"cpu_pct": round(cpu, 3), "rss_mib": rss / 2**20}
        if pss is not None:
            out["bare_interpreter"]["pss_mib"] = pss / 2**20
    finally:
        bare.signal(signal.SIGKILL)
        bare.wait(5)
    for interval in (1.0, 0.25):
        say(f"sdk: idle agent at {interval} s heartbeats, CPU over {window:.0f} s")
        cluster, _topics = _cluster(ctx, f"hb{int(interval * 100)}", interval)
        with cluster:
            proc = cluster.start_agent("idle-1")
            time.sleep(5)  # start-up is not the steady cost
            cpu, rss, pss = _sample(proc.pid, window)
        rec = {
            "cpu_pct_of_core": round(cpu, 3),
            "rss_mib": round(rss / 2**20, 1),
            "pss_mib": round(pss / 2**20, 1) if pss is not None else None,
            "rss_over_bare_mib": round(rss / 2**20 - out["bare_interpreter"]["rss_mib"], 1),
        }
        out[f"hb_{interval:g}s"] = rec
        say(f"  {json.dumps(rec)}")
    return out


def run(ctx: BenchContext) -> dict[str, Any]:
    return {"checkpoint": checkpoint_latency(ctx), "agent": heartbeat_cost(ctx)}
