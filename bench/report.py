"""The report: headline figures, the summary table against the targets, plots, and the README."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TARGETS = {
    "e2e_p99_s": 3.5,
    "e2e_p99_s_hb_0_25": 1.2,
    "overhead_p99_s": 0.150,
    "overhead_p99_s_hb_0_25": 0.150,
    "speedup_vs_min_session": 2.5,
    "speedup_vs_default": 15.0,
    "graceful_p99_s": 0.100,
    "steps_redone_per_failover_every_step": 1,
    "checkpoint_p99_ms": 10.0,
    "monitor_heartbeats_per_s_1_worker": 20_000,
    "takeover_decides_p99_s": 5.0,
    "takeover_false_fences": 0,
}
# True: the figure must be at least the target; False: at most.
AT_LEAST = {"speedup_vs_min_session", "speedup_vs_default", "monitor_heartbeats_per_s_1_worker"}


def _get(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def headline(r: dict[str, Any]) -> dict[str, Any]:
    """The flat keys of results.json (seconds unless named); None where not measured."""
    fo = r.get("failover", {})
    h: dict[str, Any] = {
        "e2e_p99_s": _get(fo, "hb_1", "kill", "e2e_s", "p99"),
        "e2e_p50_s": _get(fo, "hb_1", "kill", "e2e_s", "p50"),
        "e2e_p99_s_hb_0_25": _get(fo, "hb_0.25", "kill", "e2e_s", "p99"),
        "e2e_p50_s_hb_0_25": _get(fo, "hb_0.25", "kill", "e2e_s", "p50"),
        "overhead_p99_s": _get(fo, "hb_1", "kill", "overhead_s", "p99"),
        "overhead_p99_s_hb_0_25": _get(fo, "hb_0.25", "kill", "overhead_s", "p99"),
        "graceful_p50_s": _get(fo, "hb_1", "graceful", "e2e_s", "p50"),
        "graceful_p99_s": _get(fo, "hb_1", "graceful", "e2e_s", "p99"),
        "steps_redone_per_failover_every_step": _get(
            fo, "redone", "every_step", "steps_redone_per_failover", "max"
        ),
        "steps_redone_per_failover_every_step_mean": _get(
            fo, "redone", "every_step", "steps_redone_per_failover", "mean"
        ),
        "baseline_min_session_e2e_p99_s": _get(r, "baseline", "min_session", "e2e_s", "p99"),
        "baseline_default_e2e_p99_s": _get(r, "baseline", "default", "e2e_s", "p99"),
        "baseline_min_session_assigned_p99_s": _get(
            r, "baseline", "min_session", "assigned_s", "p99"
        ),
        "baseline_default_assigned_p99_s": _get(r, "baseline", "default", "assigned_s", "p99"),
        "checkpoint_p50_ms": _get(r, "sdk", "checkpoint", "latency_ms", "p50"),
        "checkpoint_p99_ms": _get(r, "sdk", "checkpoint", "latency_ms", "p99"),
        "heartbeat_cpu_pct_per_agent_1s": _get(r, "sdk", "agent", "hb_1s", "cpu_pct_of_core"),
        "heartbeat_cpu_pct_per_agent_0_25s": _get(r, "sdk", "agent", "hb_0.25s", "cpu_pct_of_core"),
        "memory_rss_mib_per_agent": _get(r, "sdk", "agent", "hb_1s", "rss_mib"),
        "monitor_heartbeats_per_s_1_worker": _get(
            r, "capacity", "one_worker", "knee_heartbeats_per_s"
        ),
        "monitor_heartbeats_per_s_2_workers": _get(
            r, "capacity", "two_workers", "knee_heartbeats_per_s"
        ),
        "takeover_decides_p99_s": _get(r, "takeover", "kill", "decides_s", "p99"),
        "takeover_false_fences": (
            sum(len(c.get("false_fences", [])) for c in r["takeover"].values())
            if isinstance(r.get("takeover"), dict) and "error" not in r["takeover"]
            else None
        ),
    }
    e2e = h["e2e_p99_s"]
    for key, base in (
        ("speedup_vs_min_session", h["baseline_min_session_e2e_p99_s"]),
        ("speedup_vs_default", h["baseline_default_e2e_p99_s"]),
    ):
        h[key] = round(base / e2e, 2) if base and e2e else None
    return h


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "not measured"
    if isinstance(value, float):
        text = f"{value:.3f}" if abs(value) < 10 else f"{value:,.1f}"
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return f"{text} {unit}".strip()


def _verdict(key: str, value: Any) -> str:
    target = TARGETS.get(key)
    if target is None:
        return ""
    if value is None:
        return "n/a"
    ok = value >= target if key in AT_LEAST else value <= target
    return "meets" if ok else "FALLS SHORT"


SUMMARY = [
    ("e2e_p99_s", "failover end to end p99, 1 s heartbeats (timeout 3 s)", "s", "<= 3.5 s"),
    (
        "e2e_p99_s_hb_0_25",
        "failover end to end p99, 0.25 s heartbeats (timeout 1 s)",
        "s",
        "<= 1.2 s",
    ),
    (
        "overhead_p99_s",
        "overhead above the timeout p99 (detect+dispatch+resume), 1 s",
        "s",
        "<= 0.150 s",
    ),
    ("overhead_p99_s_hb_0_25", "overhead above the timeout p99, 0.25 s", "s", "<= 0.150 s"),
    ("baseline_min_session_e2e_p99_s", "consumer-group baseline p99, session 6 s", "s", ""),
    ("baseline_default_e2e_p99_s", "consumer-group baseline p99, session 45 s (default)", "s", ""),
    ("speedup_vs_min_session", "speed-up vs baseline at minimum session (p99/p99)", "x", ">= 2.5x"),
    ("speedup_vs_default", "speed-up vs baseline at default session (p99/p99)", "x", ">= 15x"),
    ("graceful_p50_s", "graceful handoff p50 (SIGTERM to resumed elsewhere)", "s", ""),
    ("graceful_p99_s", "graceful handoff p99", "s", "<= 0.100 s"),
    (
        "steps_redone_per_failover_every_step",
        "steps redone per failover, per-step checkpoints (max)",
        "",
        "<= 1",
    ),
    ("checkpoint_p50_ms", "checkpoint latency p50 (acks=all)", "ms", ""),
    ("checkpoint_p99_ms", "checkpoint latency p99 (acks=all)", "ms", "<= 10 ms"),
    ("heartbeat_cpu_pct_per_agent_1s", "idle agent CPU, 1 s heartbeats", "% core", ""),
    ("heartbeat_cpu_pct_per_agent_0_25s", "idle agent CPU, 0.25 s heartbeats", "% core", ""),
    ("memory_rss_mib_per_agent", "agent process RSS", "MiB", ""),
    (
        "monitor_heartbeats_per_s_1_worker",
        "heartbeats/s one monitor worker sustains",
        "/s",
        ">= 20,000/s",
    ),
    ("monitor_heartbeats_per_s_2_workers", "heartbeats/s two monitor workers sustain", "/s", ""),
    (
        "takeover_decides_p99_s",
        "monitor worker SIGKILLed to the survivor deciding again, p99",
        "s",
        "<= 5 s",
    ),
    ("takeover_false_fences", "live agents fenced during monitor takeovers", "", "0"),
]


def summary_rows(r: dict[str, Any]) -> list[list[str]]:
    """Header + one row per headline figure: what, measured, target, verdict."""
    rows = [["figure", "measured", "target", "verdict"]]
    for key, label, unit, target in SUMMARY:
        value = r.get(key)
        rows.append([label, _fmt(value, unit), target, _verdict(key, value)])
    return rows


def _md_table(rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows[1:]]
    return "\n".join(out)


def _dist_row(
    name: str, d: dict[str, Any] | None, scale: float = 1.0, unit: str = "s"
) -> list[str]:
    if not d or not d.get("n"):
        return [name, "0", "", "", "", "", ""]

    def f(x: Any) -> str:
        return "" if x is None else f"{x * scale:.3f}"

    return [name, str(d["n"]), f(d["p50"]), f(d["p95"]), f(d["p99"]), f(d["max"]), unit]


# -- plots ---------------------------------------------------------------------------------------


def plots(r: dict[str, Any], out: Path) -> list[tuple[str, str]]:
    """Write PNGs; return (file name, caption) of each written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[tuple[str, str]] = []
    fo = r.get("failover", {})
    bl = r.get("baseline", {})

    # 1. End-to-end failover time, ours vs the consumer group.
    series = []
    for label, samples in (
        ("ours hb 0.25 s", _get(fo, "hb_0.25", "kill", "samples")),
        ("ours hb 1 s", _get(fo, "hb_1", "kill", "samples")),
        ("consumer group\nsession 6 s", _get(bl, "min_session", "samples")),
        ("consumer group\nsession 45 s", _get(bl, "default", "samples")),
    ):
        if samples:
            key = "resume_s" if "consumer" in label else "e2e_s"
            series.append((label, [s[key] for s in samples if key in s]))
    if series:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        ax.boxplot([s[1] for s in series], whis=(0, 100))
        ax.set_xticks(range(1, len(series) + 1), [s[0] for s in series])
        for i, (_label, values) in enumerate(series, start=1):
            ax.scatter([i] * len(values), values, s=8, alpha=0.5)
        ax.set_yscale("log")
        ax.set_ylabel("SIGKILL -> work resumed elsewhere (s, log)")
        ax.set_title("Failover end to end: agent-failover vs Kafka consumer-group failover")
        ax.grid(True, axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "failover-e2e.png", dpi=110)
        plt.close(fig)
        written.append(("failover-e2e.png", "End-to-end failover time per kill (box: min..max)"))

    # 2. Phases of our failover.
    phases = ("detection_s", "dispatch_s", "resume_s")
    configs = [(k, _get(fo, k, "kill")) for k in ("hb_0.25", "hb_1")]
    configs = [(k, v) for k, v in configs if v and v.get("e2e_s", {}).get("n")]
    if configs:
        fig, axes = plt.subplots(1, 2, figsize=(9, 4))
        for ax, q in zip(axes, ("p50", "p99"), strict=True):
            bottom = [0.0] * len(configs)
            for ph in phases:
                vals = [(_get(v, ph, q) or 0.0) for _k, v in configs]
                ax.bar([k for k, _v in configs], vals, bottom=bottom, label=ph[:-2])
                bottom = [b + x for b, x in zip(bottom, vals, strict=True)]
            ax.set_title(f"phases, {q} of each")
            ax.set_ylabel("seconds")
        axes[0].legend()
        fig.suptitle("Where failover time goes (detection = last heartbeat seen -> decision)")
        fig.tight_layout()
        fig.savefig(out / "failover-phases.png", dpi=110)
        plt.close(fig)
        written.append(("failover-phases.png", "Failover phases, p50 and p99 of each phase"))

    # 3. Monitor capacity ramp.
    cap = r.get("capacity", {})
    ramps = [(k, _get(cap, k, "levels")) for k in ("one_worker", "two_workers")]
    ramps = [(k, v) for k, v in ramps if v]
    if ramps:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        ax2 = ax.twinx()
        for name, levels in ramps:
            x = [lv["heartbeats_per_s"] for lv in levels]
            y = [lv["detection_s"]["max"] for lv in levels]
            ax.plot(x, y, marker="o", label=f"{name}: detection max")
            ax2.plot(
                x,
                [lv["monitor_cpu_pct"] for lv in levels],
                ls="--",
                marker="x",
                label=f"{name}: monitor CPU %",
            )
        ax.axhline(4.0, color="red", lw=0.8, label="timeout + 1 s")
        ax.set_xlabel("heartbeats per second (simulated agents at 1 Hz)")
        ax.set_ylabel("detection, last heartbeat -> fence (s)")
        ax2.set_ylabel("monitor CPU (% of one core)")
        ax.legend(loc="upper left", fontsize=8)
        ax2.legend(loc="lower right", fontsize=8)
        ax.set_title("Monitor capacity ramp")
        fig.tight_layout()
        fig.savefig(out / "monitor-capacity.png", dpi=110)
        plt.close(fig)
        written.append(("monitor-capacity.png", "Monitor capacity: detection and CPU per level"))

    # 4. Checkpoint latency CDF.
    samples = _get(r, "sdk", "checkpoint", "samples_ms")
    if samples:
        data = sorted(samples)
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot(data, [(i + 1) / len(data) for i in range(len(data))])
        ax.axvline(10, color="red", lw=0.8, label="target p99 10 ms")
        ax.set_xscale("log")
        ax.set_xlabel("ctx.checkpoint() latency, ms (acks=all, log)")
        ax.set_ylabel("fraction of checkpoints")
        ax.legend()
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "checkpoint-latency.png", dpi=110)
        plt.close(fig)
        written.append(("checkpoint-latency.png", "Checkpoint latency, cumulative distribution"))

    # 5. Work lost per checkpoint policy.
    redone = _get(fo, "redone")
    if redone:
        labels = [k for k in ("every_step", "every_1s", "every_60s") if k in redone]
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.bar(labels, [redone[k]["progress_lost_s"].get("mean") or 0 for k in labels])
        for i, k in enumerate(labels):
            d = redone[k]["steps_redone_per_failover"]
            ax.annotate(
                f"steps redone mean {d.get('mean')}, max {d.get('max')}",
                (i, 0),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_ylabel("progress lost per failover, mean (s)")
        ax.set_title("Work lost per failover by checkpoint policy")
        fig.tight_layout()
        fig.savefig(out / "progress-lost.png", dpi=110)
        plt.close(fig)
        written.append(("progress-lost.png", "Progress lost per failover by checkpoint policy"))
    return written


# -- README --------------------------------------------------------------------------------------


def readme(r: dict[str, Any], plots_written: list[tuple[str, str]]) -> str:
    from bench.report_text import render

    return render(r, plots_written, summary_rows(r), _md_table, _dist_row, _get)
