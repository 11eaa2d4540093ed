"""Our failover, measured: kills and graceful stops on a live pool of SDK agents and one monitor.

Per configuration (heartbeat interval and timeout, checkpoint policy) one :class:`~bench.pool.Pool`
serves every trial: SIGKILLs, then SIGTERMs for the graceful handoff. What a trial measures is
defined in ``bench.pool``; this module runs the configurations and summarises their trials.
"""

from __future__ import annotations

import signal
from typing import Any

from bench.common import BenchContext, dist, say
from bench.pool import Pool


def _stuck(trials: list[dict[str, Any]]) -> bool:
    """Two trials in a row without an agent holding work: the pool is stuck (bounded runs)."""
    last = trials[-2:]
    return len(last) == 2 and all("no agent held" in t.get("error", "") for t in last)


def _line(name: str, i: int, n: int, r: dict[str, Any]) -> str:
    if "error" in r:
        return f"  {name} {i}/{n}: ERROR {r['error']}"
    parts = [f"e2e {r['e2e_s']:.3f} s"]
    for key, label in (
        ("detection_s", "detect"),
        ("dispatch_s", "dispatch"),
        ("resume_s", "resume"),
        ("overhead_s", "overhead"),
    ):
        if key in r:
            parts.append(f"{label} {r[key] * 1000:.0f} ms")
    parts.append(f"{r['tasks']} task(s), {r['steps_redone']} redone")
    return f"  {name} {i}/{n}: " + ", ".join(parts)


def summarise(trials: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [t for t in trials if "error" not in t]
    keys = (
        "detection_s",
        "kill_to_decision_s",
        "dispatch_s",
        "resume_s",
        "e2e_s",
        "e2e_first_task_s",
        "e2e_from_last_hb_s",
        "overhead_s",
        "steps_redone",
        "progress_lost_s",
    )
    out: dict[str, Any] = {k: dist([t[k] for t in ok if k in t]) for k in keys}
    out["trials"] = len(trials)
    out["errors"] = [t["error"] for t in trials if "error" in t]
    out["samples"] = ok
    return out


def run_kills(
    ctx: BenchContext,
    name: str,
    *,
    interval: float,
    timeout: float,
    kills: int,
    graceful: int = 0,
    policy: str = "every_step",
) -> dict[str, Any]:
    """``kills`` SIGKILL trials (then ``graceful`` SIGTERM trials) on one pool."""
    say(
        f"failover {name}: heartbeat {interval} s, timeout {timeout} s, checkpoint {policy}, "
        f"{kills} kill(s), {graceful} graceful stop(s)"
    )
    out: dict[str, Any] = {
        "heartbeat_interval_s": interval,
        "heartbeat_timeout_s": timeout,
        "checkpoint_policy": policy,
    }
    with Pool(ctx, name, interval=interval, timeout=timeout, policy=policy) as pool:
        trials: list[dict[str, Any]] = []
        for i in range(kills):
            if _stuck(trials):
                say(f"  {name}: two trials in a row found no work; giving up on this pool")
                break
            r = pool.trial(signal.SIGKILL)
            trials.append(r)
            say(_line(f"{name} kill", i + 1, kills, r))
        out["kill"] = summarise(trials)
        if graceful:
            handoffs: list[dict[str, Any]] = []
            for i in range(graceful):
                if _stuck(trials[-1:] + handoffs):
                    say(f"  {name}: no work for the graceful trials; giving up on this pool")
                    break
                r = pool.trial(signal.SIGTERM)
                handoffs.append(r)
                say(_line(f"{name} SIGTERM", i + 1, graceful, r))
            out["graceful"] = summarise(handoffs)
        out["false_fences"] = pool.false_fences()
        if out["false_fences"]:
            say(f"  {name}: {len(out['false_fences'])} live agent(s) fenced by the monitor")
        if not pool.monitor.alive:
            out["monitor_died"] = pool.monitor.log_tail()
    return out


def run(ctx: BenchContext) -> dict[str, Any]:
    """Failover at 0.25 s and 1 s heartbeats, graceful handoff, and steps redone per policy."""
    prof = ctx.profile
    res: dict[str, Any] = {}
    res["hb_0.25"] = run_kills(ctx, "hb025", interval=0.25, timeout=1.0, kills=prof.failover_kills)
    res["hb_1"] = run_kills(
        ctx,
        "hb1",
        interval=1.0,
        timeout=3.0,
        kills=prof.failover_kills,
        graceful=prof.graceful_trials,
    )
    redone: dict[str, Any] = {}
    every_step = [
        t for key in ("hb_0.25", "hb_1") for t in res[key]["kill"]["samples"] if "steps_redone" in t
    ]
    redone["every_step"] = {
        "kills": len(every_step),
        "steps_redone_per_failover": dist([t["steps_redone"] for t in every_step]),
        "progress_lost_s": dist([t["progress_lost_s"] for t in every_step]),
    }
    for policy, label in (("every:1", "every_1s"), ("every:60", "every_60s")):
        r = run_kills(
            ctx,
            f"ck{label.split('_')[1]}",
            interval=0.25,
            timeout=1.0,
            kills=prof.redone_kills,
            policy=policy,
        )
        samples = r["kill"]["samples"]
        redone[label] = {
            "kills": len(samples),
            "errors": r["kill"]["errors"],
            "steps_redone_per_failover": dist([t["steps_redone"] for t in samples]),
            "progress_lost_s": dist([t["progress_lost_s"] for t in samples]),
        }
    res["redone"] = redone
    return res
