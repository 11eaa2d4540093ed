"""Baseline: failover by Kafka's own consumer group (what users have today without us).

Per trial: a fresh topic of 4 partitions holding tasks of 10 steps (one record per step), two
``bench.cg_worker`` processes in one group (cooperative-sticky, offsets committed after each
step). Once both members own two partitions and are working, one is SIGKILLed at a random moment
and the harness measures, on the wall clock shared by every process of this machine:

* ``assigned``: SIGKILL until the survivor owns every partition of the dead member;
* ``resume`` (= end to end): SIGKILL until the survivor starts the first step of the dead member's
  work (the record after the committed offset);
* ``steps_redone``: steps the dead member executed whose offsets were not committed, so the
  survivor executed them again.

Two configurations: ``session.timeout.ms=6000`` (Apache Kafka's broker minimum,
``group.min.session.timeout.ms``) with ``heartbeat.interval.ms=1000``, and the client defaults
(45000 / 3000). The runs are dominated by timeouts, not CPU, so several trials may run side by
side (separate topics and groups); the profile says how many.
"""

from __future__ import annotations

import concurrent.futures
import random
import signal
import time
import uuid
from typing import Any

import orjson
from confluent_kafka import Producer

from agent_failover.dev.processes import spawn, stop_all
from agent_failover.dev.reading import TopicTail
from agent_failover.dev.waiting import eventually
from agent_failover.topics import TopicSpec, ensure_topics
from bench.common import ROOT, BenchContext, dist, say

PARTITIONS = 4
STEPS_PER_TASK = 10
STEP_SECONDS = "0.2,0.3"

CONFIGS: dict[str, tuple[int, int]] = {
    "min_session": (6000, 1000),  # session.timeout.ms, heartbeat.interval.ms
    "default": (0, 0),  # librdkafka defaults: 45000, 3000
}


def _owners(events: list[dict[str, Any]]) -> dict[int, str]:
    owner: dict[int, str] = {}
    for ev in events:
        if ev["kind"] == "assign":
            for p in ev["partitions"]:
                owner[p] = ev["worker"]
        elif ev["kind"] in ("revoke", "lost"):
            for p in ev["partitions"]:
                if owner.get(p) == ev["worker"]:
                    del owner[p]
    return owner


def _create_topics(bootstrap: str, partitions: dict[str, int]) -> None:
    ensure_topics(bootstrap, specs=[TopicSpec(t, n, {}, "baseline") for t, n in partitions.items()])


def run_trial(ctx: BenchContext, config: str, trial: int) -> dict[str, Any]:
    """One kill: returns the trial's timings (seconds) or an ``error``."""
    session_ms, hb_ms = CONFIGS[config]
    prefix = ctx.prefix(f"cg{config[:3]}{trial}")
    steps_topic, events_topic = prefix + "steps", prefix + "events"
    group = f"bench-cg-{uuid.uuid4().hex[:8]}"
    _create_topics(ctx.bootstrap, {steps_topic: PARTITIONS, events_topic: 1})
    producer = Producer({"bootstrap.servers": ctx.bootstrap, "linger.ms": 0})
    for p in range(PARTITIONS):  # one task chain per partition; workers append the next steps
        task_id = f"task-{p}"
        producer.produce(
            steps_topic,
            key=task_id.encode(),
            value=orjson.dumps({"task_id": task_id, "step": 0, "steps": STEPS_PER_TASK}),
            partition=p,
        )
    producer.flush(30)
    logs = ctx.logs("baseline")
    names = ["w1", "w2"]
    procs = {
        n: spawn(
            n,
            [
                "-m",
                "bench.cg_worker",
                ctx.bootstrap,
                steps_topic,
                events_topic,
                group,
                n,
                str(session_ms),
                str(hb_ms),
                STEP_SECONDS,
            ],
            logs / f"{config}-{trial}-{n}.log",
            cwd=ROOT,
        )
        for n in names
    }
    tail = TopicTail(ctx.bootstrap, [events_topic]).start()
    try:

        def events() -> list[dict[str, Any]]:
            return [orjson.loads(r.value) for r in tail.snapshot() if r.value]

        def stable() -> bool:
            evs = events()
            owner = _owners(evs)
            if len(owner) != PARTITIONS or set(owner.values()) != set(names):
                return False
            last_assign = {ev["worker"]: ev["at"] for ev in evs if ev["kind"] == "assign"}
            return all(
                any(
                    ev["kind"] == "step" and ev["worker"] == n and ev["at"] > last_assign[n]
                    for ev in evs
                )
                for n in names
            )

        try:
            eventually(stable, 150, "the group to settle", interval=0.1)
        except TimeoutError as exc:
            return {"error": str(exc)}
        time.sleep(random.uniform(0.5, 1.5))  # a random moment within a step
        victim = random.choice(names)
        survivor = next(n for n in names if n != victim)
        victim_parts = {p for p, w in _owners(events()).items() if w == victim}
        kill_at = time.time()
        procs[victim].signal(signal.SIGKILL)
        limit = (session_ms or 45000) / 1000 + 90

        def assigned() -> float | None:
            """When the survivor owned every partition of the victim (after the kill)."""
            owned: set[int] = set()
            for ev in events():
                if ev["worker"] != survivor or ev["at"] < kill_at or ev["kind"] != "assign":
                    continue
                owned |= set(ev["partitions"])
                if victim_parts <= owned:
                    return float(ev["at"])
            return None

        def resumed() -> float | None:
            """When the survivor started the first step of the victim's work."""
            return next(
                (
                    float(ev["started_at"])
                    for ev in events()
                    if ev["kind"] == "step"
                    and ev["worker"] == survivor
                    and ev["partition"] in victim_parts
                    and ev["started_at"] > kill_at
                ),
                None,
            )

        deadline = time.monotonic() + limit  # one limit for both
        try:
            assigned_at = eventually(assigned, limit, "the survivor to own the partitions")
            resume_at = eventually(
                resumed, max(0.0, deadline - time.monotonic()), "the survivor to resume the work"
            )
        except TimeoutError:
            return {"error": f"survivor did not take over within {limit:.0f} s"}
        evs = events()
        first_offset: dict[int, int] = {}
        for ev in evs:
            if (
                ev["kind"] == "step"
                and ev["worker"] == survivor
                and ev["partition"] in victim_parts
            ) and ev["started_at"] > kill_at:
                first_offset.setdefault(ev["partition"], ev["offset"])
        redone = sum(
            1
            for ev in evs
            if ev["kind"] == "step"
            and ev["worker"] == victim
            and ev["partition"] in first_offset
            and ev["offset"] >= first_offset[ev["partition"]]
        )
        return {
            "assigned_s": assigned_at - kill_at,
            "resume_s": resume_at - kill_at,
            "steps_redone": redone,
            "victim_partitions": sorted(victim_parts),
        }
    finally:
        tail.stop()
        stop_all(procs.values(), 5)


def run_config(ctx: BenchContext, config: str, trials: int, parallel: int) -> dict[str, Any]:
    """``trials`` kills of one configuration, ``parallel`` at a time."""
    session_ms, hb_ms = CONFIGS[config]
    say(
        f"baseline {config}: {trials} kill(s), session.timeout.ms={session_ms or 'default'}, "
        f"{parallel} side by side"
    )
    results: list[dict[str, Any]] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = {pool.submit(run_trial, ctx, config, i): i for i in range(trials)}
        for fut in concurrent.futures.as_completed(futures):
            i = futures[fut]
            try:
                res = fut.result()
            except Exception as exc:
                res = {"error": f"{type(exc).__name__}: {exc}"}
            results.append(res)
            if "error" in res:
                say(f"  baseline {config} trial {i + 1}/{trials}: ERROR {res['error']}")
            else:
                say(
                    f"  baseline {config} trial {i + 1}/{trials}: "
                    f"assigned {res['assigned_s']:.2f} s,"
                    f" resumed {res['resume_s']:.2f} s, {res['steps_redone']} step(s) redone"
                )
    ok = [r for r in results if "error" not in r]
    return {
        "session_timeout_ms": session_ms or 45000,
        "heartbeat_interval_ms": hb_ms or 3000,
        "trials": trials,
        "parallel": parallel,
        "errors": [r["error"] for r in results if "error" in r],
        "assigned_s": dist([r["assigned_s"] for r in ok]),
        "e2e_s": dist([r["resume_s"] for r in ok]),
        "steps_redone": dist([r["steps_redone"] for r in ok]),
        "samples": ok,
    }


def _join_error(bootstrap: str, topic: str, session_ms: int) -> str | None:
    """None if a group member with ``session_ms`` gets an assignment, else the reason."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-probe-{uuid.uuid4().hex[:6]}",
            "session.timeout.ms": session_ms,
            "heartbeat.interval.ms": max(100, session_ms // 3),
        }
    )
    errors: list[str] = []
    assigned: list[bool] = []
    consumer.subscribe([topic], on_assign=lambda _c, _parts: assigned.append(True))

    def answered() -> bool:
        msg = consumer.poll(0.1)
        if msg is not None and msg.error():
            errors.append(str(msg.error()))
        return bool(assigned or errors)

    try:
        eventually(answered, 20, f"a join with session.timeout.ms={session_ms}", interval=0)
    except TimeoutError as exc:
        errors.append(str(exc))
    finally:
        consumer.close()
    return errors[0] if errors else None


def probe_min_session(ctx: BenchContext) -> dict[str, Any]:
    """Which small session timeouts the broker accepts (a JoinGroup with that timeout)."""
    topic = ctx.prefix("cgprobe") + "t"
    _create_topics(ctx.bootstrap, {topic: 1})
    accepted: dict[str, Any] = {}
    for ms in (1000, 3000, 6000):
        error = _join_error(ctx.bootstrap, topic, ms)
        accepted[str(ms)] = error is None
        if error is not None:
            accepted[f"{ms}_error"] = error
    return accepted


def run(ctx: BenchContext) -> dict[str, Any]:
    """Both configurations, plus which session timeouts the broker accepts."""
    prof = ctx.profile
    out: dict[str, Any] = {"probe_session_timeouts_accepted": probe_min_session(ctx)}
    say(f"  broker accepts session.timeout.ms: {out['probe_session_timeouts_accepted']}")
    out["min_session"] = run_config(
        ctx, "min_session", prof.baseline_min_trials, prof.baseline_parallel_min
    )
    out["default"] = run_config(
        ctx, "default", prof.baseline_default_trials, prof.baseline_parallel_default
    )
    return out
