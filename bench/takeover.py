"""Monitor takeover: a worker dies and another owns its partitions and decides again.

A :class:`~bench.pool.Pool` of SDK agents (heartbeat 1 s, timeout 3 s) with monitor workers of
one group. Three cases, each run several times on one pool:

* ``kill``: two workers; an agent on one worker's partitions is SIGKILLed, then that worker is
  SIGKILLed; the survivor takes over. A new worker is started after each run.
* ``stop``: the same with SIGTERM for the worker (a graceful stop: on the development broker it
  sends no LeaveGroup, docs/tansu.md quirk e, so its partitions wait for its session).
* ``restart``: one worker, SIGKILLed after the agent and started again at once.

The agent is the busiest one on the dying worker's partitions holding checkpointed tasks; it is
SIGKILLed just before the worker, so only the dying worker ever heard its last heartbeat.

Per run, from the worker's death (wall clock, shared by every process of the machine):
``owns_all_s`` until the surviving (or restarted) worker owns every partition of the dead one
(its log: ``took over partition``), ``decides_s`` until it decides on all its partitions again
(its log: ``deciding on partitions``), ``fenced_s`` until the agent killed just before the worker
is fenced (the fence's ``issued_at``), ``resumed_s`` until every task the fence moved has started
a step in its new attempt (or completed, if its checkpoint was after its last step).
``false_fences``: fences of epochs the harness did not kill (must be 0).
"""

from __future__ import annotations

import datetime
import random
import re
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent_failover import models as m
from agent_failover.dev.ledger import StepResult
from agent_failover.dev.processes import Proc
from agent_failover.dev.victim import busiest_agent
from agent_failover.dev.waiting import eventually
from agent_failover.partitioner import partition_for
from bench.common import BenchContext, dist, say
from bench.pool import Pool

INTERVAL = 1.0
TIMEOUT = 3.0
AGENTS = 4
#: Heavier than an agent failover: a rebalance, recovery, and a replacement worker.
RUN_DEADLINE_S = 60.0
SETTLE_DEADLINE_S = 90.0

#: A line of the monitor's text log (``agent_failover.logs``: time, level, logger, message).
_LOG_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO [\w.]+: "
    r"(?:took over partition (\d+)|deciding on partitions \[([\d, ]*)\])"
)


def _log_events(path: Path, since: float) -> tuple[dict[int, float], list[tuple[float, set[int]]]]:
    """From a worker's log, after ``since`` (Unix time): partition -> when it was first taken
    over, and each "deciding on partitions" line's time and partitions."""
    taken: dict[int, float] = {}
    deciding: list[tuple[float, set[int]]] = []
    for line in path.read_text(errors="replace").splitlines():
        match = _LOG_LINE.match(line)
        if match is None:
            continue
        stamp = datetime.datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if stamp < since:
            continue
        if match[2] is not None:
            taken.setdefault(int(match[2]), stamp)
        else:
            deciding.append((stamp, {int(p) for p in match[3].split(",") if p.strip()}))
    return taken, deciding


class Takeover:
    """Monitor workers beside a pool's agents; one run kills (or stops) one of them."""

    def __init__(self, pool: Pool, workers: int) -> None:
        self.pool = pool
        self.partitions = frozenset(range(pool.topics.agent_partitions))
        self.workers: dict[str, Proc] = {"monitor": pool.monitor}
        self._started = 1
        while len(self.workers) < workers:
            self._start_worker()

    def _start_worker(self) -> str:
        self._started += 1
        name = f"monitor-{self._started}"
        data = self.pool.log_dir / f"{name}-data"
        self.workers[name] = self.pool.cluster.start_monitor(
            name, {"AGENT_FAILOVER_MONITOR_DATA_DIR": str(data)}
        )
        return name

    def monitor_id(self, name: str) -> str:
        """The id worker ``name`` writes in its records (host and process id)."""
        return f"{socket.gethostname()}-{self.workers[name].pid}"

    def owned(self) -> dict[str, frozenset[int]] | None:
        """Each live worker's partitions from its newest summary, once they split every
        partition between them and every live agent is reported healthy; else None."""
        fleet = self.pool.rec.fleet
        ids = {name: self.monitor_id(name) for name, p in self.workers.items() if p.alive}
        if not all(i in fleet for i in ids.values()):
            return None
        split = {name: frozenset(fleet[i].partitions) for name, i in ids.items()}
        if any(not p for p in split.values()) or sum(map(len, split.values())) != len(
            self.partitions
        ):
            return None
        if frozenset().union(*split.values()) != self.partitions:
            return None
        healthy = {(a.agent_id, a.epoch) for i in ids.values() for a in fleet[i].agents}
        live = set(self.pool.live_epochs().items())
        return split if len(live) >= AGENTS and live <= healthy else None

    def _victim(self, split: dict[str, frozenset[int]]) -> tuple[str, str, int] | None:
        """A worker and the busiest agent on its partitions holding checkpointed tasks."""
        rec, parts = self.pool.rec, self.pool.topics.agent_partitions
        epochs = self.pool.live_epochs()
        for worker in random.sample(sorted(split), len(split)):
            held = {
                a: dict(rec.held.get((a, e), {}))
                for a, e in epochs.items()
                if partition_for(a, parts) in split[worker]
            }
            steps = {
                a: {t: rec.checkpointed.get((t, att), -1) for t, att in tasks.items()}
                for a, tasks in held.items()
            }
            agent = busiest_agent(steps, lambda _a, t: all(0 <= s < 20 for s in t.values()))
            if agent is not None:
                return worker, agent, epochs[agent]
        return None

    def run(self, case: str) -> dict[str, Any]:
        """One takeover: ``kill``, ``stop`` or ``restart`` (see the module docstring)."""
        self.pool.ensure_agents()
        try:
            split = eventually(self.owned, SETTLE_DEADLINE_S, "the workers to settle")
            worker, agent, epoch = eventually(
                lambda: self._victim(split), 30, "an agent holding checkpointed work"
            )
        except TimeoutError as exc:
            return {"error": str(exc)}
        time.sleep(random.uniform(0, INTERVAL))  # a random phase against the heartbeats
        self.pool.killed.add((agent, epoch))
        agent_at = time.time()
        self.pool.agents[agent].signal(signal.SIGKILL)
        died = time.time()
        dead = self.workers.pop(worker)
        dead.signal(signal.SIGTERM if case == "stop" else signal.SIGKILL)
        heir = self._start_worker() if case == "restart" else next(iter(self.workers))
        lost = split[worker]
        owner = self.workers[heir]
        try:
            fence, resumed = eventually(
                lambda: self._fenced_and_resumed(agent, epoch),
                RUN_DEADLINE_S,
                "the agent's fence and its tasks to resume",
            )
            taken, deciding = eventually(
                lambda: self._decided(owner.log_path, died, lost),
                RUN_DEADLINE_S,
                "the surviving worker to decide on every partition",
            )
        except TimeoutError as exc:
            return {"error": f"{case}: {exc}"}
        finally:
            dead.wait(15)
            if case != "restart":
                self._start_worker()
            self.pool.add_agent()
        return {
            "worker": worker,
            "agent": agent,
            "tasks": len(fence.plan),
            "agent_lead_s": died - agent_at,
            "owns_all_s": max(taken[p] for p in lost) - died,
            "decides_s": deciding - died,
            "fenced_s": fence.issued_at - died,
            "fenced_by": fence.monitor_id,
            "resumed_s": resumed - died if resumed is not None else None,
        }

    def _decided(
        self, log: Path, since: float, lost: frozenset[int]
    ) -> tuple[dict[int, float], float] | None:
        taken, deciding = _log_events(log, since)
        if not lost <= taken.keys():
            return None
        # The first decisions over a set holding every lost partition, once all were taken.
        after = max(taken[p] for p in lost)
        at = next((t for t, ps in deciding if t >= after and lost <= ps), None)
        return None if at is None else (taken, at)

    def _fenced_and_resumed(self, agent: str, epoch: int) -> tuple[m.Control, float | None] | None:
        """The fence of ``agent``'s ``epoch`` once every task it moved has started a step in a
        new attempt, with the last of those starts (None: it moved nothing); else None."""
        items = self.pool.rec.refresh()
        fence = next(
            (
                v
                for _r, v in items
                if isinstance(v, m.Control)
                and v.kind is m.ControlKind.FENCE
                and (v.agent_id, v.epoch) == (agent, epoch)
            ),
            None,
        )
        if fence is None:
            return None
        # A task the fence left waiting (no healthy target) moves later, in a later attempt; one
        # checkpointed after its last step completes at once, without a step.
        moved = {e.task_id: e.attempt for e in fence.plan}
        started: dict[str, float] = {}
        for _r, v in items:
            if isinstance(v, StepResult | m.TaskEvent) and v.task_id in moved:
                done = not isinstance(v, m.TaskEvent) or v.kind is m.EventKind.COMPLETED
                if done and (v.attempt or 0) >= moved[v.task_id]:
                    started.setdefault(v.task_id, v.at)
        if started.keys() != moved.keys():
            return None
        return fence, max(started.values(), default=None)


def _summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]
    keys = ("owns_all_s", "decides_s", "fenced_s", "resumed_s", "agent_lead_s")
    out: dict[str, Any] = {k: dist([r.get(k) for r in ok]) for k in keys}
    out["runs"] = len(runs)
    out["errors"] = [r["error"] for r in runs if "error" in r]
    out["samples"] = ok
    return out


def _line(case: str, i: int, n: int, r: dict[str, Any]) -> str:
    if "error" in r:
        return f"  takeover {case} {i}/{n}: ERROR {r['error']}"
    fenced = "?" if r["fenced_s"] is None else f"{r['fenced_s']:.2f}"
    return (
        f"  takeover {case} {i}/{n}: owns all {r['owns_all_s']:.2f} s, decides "
        f"{r['decides_s']:.2f} s, agent fenced {fenced} s, tasks resumed {r['resumed_s']:.2f} s"
    )


def run_case(ctx: BenchContext, case: str, runs: int) -> dict[str, Any]:
    """``runs`` takeovers of one case on one pool."""
    workers = 1 if case == "restart" else 2
    say(f"takeover {case}: {workers} worker(s), {AGENTS} agents, {runs} run(s)")
    with Pool(ctx, f"tk{case}", interval=INTERVAL, timeout=TIMEOUT, agents=AGENTS) as pool:
        takeover = Takeover(pool, workers)
        results: list[dict[str, Any]] = []
        for i in range(runs):
            r = takeover.run(case)
            results.append(r)
            say(_line(case, i + 1, runs, r))
        out = _summarise(results)
        out["false_fences"] = pool.false_fences()
        if out["false_fences"]:
            say(f"  takeover {case}: {len(out['false_fences'])} live agent(s) fenced")
    return out


def run(ctx: BenchContext) -> dict[str, Any]:
    """Every case, ``ctx.profile.takeover_runs`` runs each."""
    n = ctx.profile.takeover_runs
    return {case: run_case(ctx, case, n) for case in ("kill", "stop", "restart")}


ROWS = (
    ("owns_all_s", "worker death → the survivor (or new worker) owns every partition"),
    ("decides_s", "→ it decides on them again"),
    ("fenced_s", "→ the agent killed just before the worker is fenced"),
    ("resumed_s", "→ that agent's tasks resumed elsewhere"),
)
CASES = (
    ("kill", "SIGKILL, two workers"),
    ("stop", "SIGTERM (graceful), two workers"),
    ("restart", "one worker SIGKILLed and started again"),
)


def report_lines(
    t: dict[str, Any],
    md_table: Callable[[list[list[str]]], str],
    dist_row: Callable[..., list[str]],
) -> list[str]:
    """The takeover section of docs/benchmarks/README.md."""
    rows = [["case / from the worker's death", "n", "p50", "p95", "p99", "max", "unit"]]
    fences = []
    for case, label in CASES:
        c = t.get(case)
        if not c:
            continue
        rows.append([f"**{label}**", str(c["runs"]), "", "", "", "", ""])
        rows += [dist_row(text, c.get(key)) for key, text in ROWS]
        fences.append(f"{case}: {len(c.get('false_fences', []))}")
        for err in c.get("errors", []):
            fences.append(f"{case} error: {err}")
    return [
        "\n## 7. Monitor takeover\n",
        f"Monitor workers of one group, {AGENTS} SDK agents (heartbeat every {INTERVAL:g} s, "
        f"timeout {TIMEOUT:g} s), the monitor group's session at its development-broker default "
        "(2 s). Each run SIGKILLs the busiest agent on one worker's partitions, then that worker "
        "(SIGKILL, or SIGTERM: a graceful stop, which on the development broker sends no "
        "LeaveGroup), and starts a new worker afterwards; the restart case runs one worker and "
        "starts it again at once. Times from the worker's death: the survivor's (or new "
        "worker's) log says it took over the last of the dead worker's partitions, then that it "
        "decides on them; the agent's fence (`issued_at`); every task the fence moved has "
        "started a step elsewhere (`bench/takeover.py`).\n",
        md_table(rows),
        "\nLive agents fenced (false fences): " + "; ".join(fences) + ".",
    ]
