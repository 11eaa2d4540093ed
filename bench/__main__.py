"""``python -m bench`` (``make bench``): every benchmark in one run, on one broker, then the report.

Environment:

* ``BENCH_PROFILE``: ``quick`` (default, a few minutes) or ``full`` (30+ kills per configuration).
* ``BENCH_ONLY``: comma-separated subset of ``baseline,failover,takeover,sdk,capacity`` (for
  development; the report then says which parts were not run).
* ``KAFKA_BOOTSTRAP_SERVERS``: use that broker instead of the embedded Tansu.
* ``BENCH_MERGE=1``: keep the other benchmarks' figures from the existing ``results.json`` (same
  profile) and replace only those run now, so a long run can be done in parts.

Writes ``docs/benchmarks/results.json``, ``docs/benchmarks/README.md`` and PNG plots there, and
prints the summary table. Figures are printed, never asserted: this is not a test.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import DOCS, ROOT, BenchContext, Profile, broker_for_run, machine_info, say

BENCHMARKS = ("baseline", "failover", "takeover", "sdk", "capacity")


def _runner(name: str) -> Callable[[BenchContext], dict[str, Any]]:
    if name == "baseline":
        from bench import baseline

        return baseline.run
    if name == "failover":
        from bench import failover

        return failover.run
    if name == "takeover":
        from bench import takeover

        return takeover.run
    if name == "sdk":
        from bench import sdk_cost

        return sdk_cost.run
    if name == "capacity":
        from bench import capacity

        return capacity.run
    raise SystemExit(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")


def main() -> int:
    profile = Profile.named(os.environ.get("BENCH_PROFILE", "quick"))
    only = [b for b in os.environ.get("BENCH_ONLY", "").split(",") if b] or list(BENCHMARKS)
    os.environ["PYTHONPATH"] = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    os.chdir(ROOT)
    log_dir = Path(tempfile.mkdtemp(prefix="agent-failover-bench-"))
    run_id = uuid.uuid4().hex[:4]
    command = "make bench" + ("" if profile.name == "quick" else f" BENCH_PROFILE={profile.name}")
    say(f"agent-failover benchmarks, profile {profile.name}; logs in {log_dir}")
    started = time.time()
    results: dict[str, Any] = {}
    kept_durations: dict[str, float] = {}
    existing = DOCS / "results.json"
    if os.environ.get("BENCH_MERGE") == "1" and existing.exists():
        previous = json.loads(existing.read_text())
        if previous.get("profile") == profile.name:
            results = {k: previous[k] for k in BENCHMARKS if k in previous and k not in only}
            kept_durations = {
                k: v for k, v in previous.get("durations_s", {}).items() if k in results
            }
            only_before = [b for b in previous.get("benchmarks_run", []) if b not in only]
            only = only_before + only
            say(f"merging with the figures of {', '.join(only_before) or 'nothing'}")
    results.update(
        {
            "profile": profile.name,
            "command": command,
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "benchmarks_run": only,
            "log_dir": str(log_dir),
        }
    )
    to_run = [b for b in only if b not in results]
    # Nothing from an earlier run may sit beside this run's figures.
    for stale in [*DOCS.glob("*.png"), DOCS / "monitor-profile.txt"]:
        stale.unlink(missing_ok=True)
    with broker_for_run(log_dir) as broker:
        say(f"broker: {broker.kind} at {broker.bootstrap} (tansu={broker.is_tansu})")
        results["machine"] = machine_info(broker.kind, broker.bootstrap)
        ctx = BenchContext(
            bootstrap=broker.bootstrap,
            broker_kind=broker.kind,
            is_tansu=broker.is_tansu,
            profile=profile,
            run_id=run_id,
            log_dir=log_dir,
            out_dir=DOCS,
        )
        timings: dict[str, float] = dict(kept_durations)
        for name in to_run:
            t0 = time.monotonic()
            try:
                results[name] = _runner(name)(ctx)
            except Exception as exc:
                traceback.print_exc()
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
                say(f"{name}: FAILED ({exc}); going on with the next benchmark")
            timings[name] = round(time.monotonic() - t0, 1)
            say(f"{name}: done in {timings[name]:.0f} s")
            _write(results, timings, started)
    results["machine"]["load_avg_at_end"] = list(os.getloadavg())
    _write(results, timings, started)
    from bench.report import summary_rows

    print()
    print(_table(summary_rows(results)))
    print(f"\nwrote {DOCS / 'results.json'} and {DOCS / 'README.md'}")
    return 0


def _write(results: dict[str, Any], timings: dict[str, float], started: float) -> None:
    from bench import report

    results["durations_s"] = dict(timings, total=round(time.time() - started, 1))
    results.update(report.headline(results))
    DOCS.mkdir(parents=True, exist_ok=True)
    (DOCS / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    try:
        plots = report.plots(results, DOCS)
    except Exception as exc:  # a missing matplotlib must not lose the figures
        say(f"plots failed: {exc}")
        plots = []
    (DOCS / "README.md").write_text(report.readme(results, plots))


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
