"""Build the monitor's Grafana dashboard from code (grafana-foundation-sdk).

The generated JSON is kept in the chart (``helm/agent-failover/dashboards/agent-failover.json``)
and shipped as a ConfigMap for Grafana's dashboard sidecar. Run it with the tools venv that
``tools/install-ops-tools.sh`` creates (this is not part of the installed package)::

    $TOOLS_PYTHON tools/dashboard.py            # rewrite the committed JSON
    $TOOLS_PYTHON tools/dashboard.py --check    # exit 1 if the committed JSON is stale
    $TOOLS_PYTHON tools/dashboard.py --queries  # print every query, one JSON string a line

Every query selects the monitor's series by the ``namespace`` and ``job`` variables; the metric
names are those of the monitor's metrics contract (docs/operations.md lists them).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import heatmap, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common, dashboard
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

Panel = timeseries.Panel | stat.Panel | heatmap.Panel

OUTPUT = (
    Path(__file__).resolve().parent.parent / "helm/agent-failover/dashboards/agent-failover.json"
)
UID = "agent-failover-monitor"
SEL = 'namespace=~"$namespace", job=~"$job"'
DATASOURCE = dashboard.DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"


def query(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    """A range query with a legend."""
    q = prometheus.Dataquery().expr(expr).ref_id(ref).range()
    return q.legend_format(legend) if legend else q


def per_minute(metric: str, by: str = "") -> str:
    """A counter's fleet-wide rate per minute, optionally by some labels."""
    grouping = f"sum by ({by}) " if by else "sum"
    return f"{grouping}(rate({metric}{{{SEL}}}[{RATE}])) * 60"


def quantiles(metric: str, legend: str) -> list[prometheus.Dataquery]:
    """p50 and p99 of a histogram over the fleet."""
    return [
        query(
            f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{{{SEL}}}[{RATE}])))",
            f"p{int(q * 100)} {legend}".strip(),
            ref,
        )
        for q, ref in ((0.5, "A"), (0.99, "B"))
    ]


def series(
    title: str,
    targets: list[prometheus.Dataquery],
    *,
    unit: str = "short",
    description: str = "",
    width: int = 12,
    stacked: bool = False,
) -> timeseries.Panel:
    """A time series panel."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .fill_opacity(10)
        .line_width(1)
        .legend(
            cb.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(cb.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI))
        .grid_pos(dashboard.GridPos(h=8, w=width))
    )
    if stacked:
        panel = panel.stacking(cb.StackingConfig().mode(common.StackingMode.NORMAL))
    for target in targets:
        panel = panel.with_target(target)
    return panel


def big_number(
    title: str, expr: str, description: str, *, red_at: float | None = None, unit: str = "short"
) -> stat.Panel:
    """A stat panel of one fleet-wide figure; red from ``red_at`` on when given."""
    steps = [dashboard.Threshold(value=None, color="green")]
    if red_at is not None:
        steps.append(dashboard.Threshold(value=red_at, color="red"))
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .with_target(query(expr).instant())
        .graph_mode(common.BigValueGraphMode.AREA)
        .color_mode(common.BigValueColorMode.VALUE)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]))
        .thresholds(db.ThresholdsConfig().mode(dashboard.ThresholdsMode.ABSOLUTE).steps(steps))
        .grid_pos(dashboard.GridPos(h=4, w=4))
    )


def distribution(title: str, metric: str, description: str, unit: str) -> heatmap.Panel:
    """A heatmap of a histogram's buckets: how the values spread, not just two quantiles."""
    return (
        heatmap.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(
            query(f"sum by (le) (increase({metric}_bucket{{{SEL}}}[{RATE}]))", "{{le}}").format(
                PromQueryFormat.HEATMAP
            )
        )
        .calculate(False)
        .y_axis(heatmap.YAxisConfig().unit(unit))
        .grid_pos(dashboard.GridPos(h=8, w=12))
    )


def fleet_row() -> tuple[str, list[Panel]]:
    return "Fleet health", [
        big_number(
            "Healthy agents",
            f'sum(agent_failover_agents{{state="healthy", {SEL}}})',
            "Agents whose heartbeats arrive on time, over every monitor worker.",
        ),
        big_number(
            "Free slots",
            f"sum(agent_failover_agent_free_slots{{{SEL}}})",
            "Task slots free on healthy agents: where moved tasks can go.",
        ),
        big_number(
            "Waiting for an agent",
            f"sum(agent_failover_tasks_waiting_for_agent{{{SEL}}})",
            "Tasks that must move but found no healthy agent with a free slot.",
            red_at=1,
        ),
        big_number(
            "Stuck tasks",
            f"sum(agent_failover_tasks_stuck{{{SEL}}})",
            "Tasks waiting longer than the stuck threshold while agents have free slots: "
            "should be 0.",
            red_at=1,
        ),
        big_number(
            "Failed agents",
            f'sum(agent_failover_agents{{state="failed", {SEL}}})',
            "Agents fenced and not back with a new epoch (kept 15 minutes).",
        ),
        big_number(
            "Oldest checkpoint",
            f"max(agent_failover_oldest_checkpoint_age_seconds{{{SEL}}})",
            "Age of the oldest running task's latest checkpoint: what a failover now "
            "would redo at most.",
            unit="s",
        ),
        series(
            "Agents by state",
            [
                query(
                    f"sum by (state) (agent_failover_agents{{{SEL}}})",
                    "{{state}}",
                )
            ],
            description="Agents of every monitor worker's partitions, by health.",
            stacked=True,
        ),
        series(
            "Free slots by pool",
            [
                query(
                    f"sum by (pool) (agent_failover_agent_free_slots{{{SEL}}})",
                    "{{pool}}",
                )
            ],
            description="Free task slots of healthy agents, active and standby pools.",
        ),
    ]


def failover_row() -> tuple[str, list[Panel]]:
    note = "Per minute, averaged over the panel's rate interval."
    return "Failovers", [
        series(
            "Failovers by reason",
            [
                query(
                    per_minute("agent_failover_failovers_total", "reason"),
                    "{{reason}}",
                )
            ],
            unit="short",
            description=f"Failover decisions written. {note}",
        ),
        series(
            "Tasks moved by reason",
            [
                query(
                    per_minute("agent_failover_tasks_moved_total", "reason"),
                    "{{reason}}",
                )
            ],
            description=f"Tasks re-dispatched to another agent. {note}",
        ),
        series(
            "Task throughput",
            [
                query(
                    per_minute("agent_failover_tasks_dispatched_total"),
                    "dispatched",
                    "A",
                ),
                query(
                    per_minute("agent_failover_tasks_completed_total"),
                    "completed",
                    "B",
                ),
                query(
                    per_minute("agent_failover_tasks_failed_total"),
                    "failed",
                    "C",
                ),
            ],
            description=f"New tasks dispatched, tasks completed and failed. {note}",
        ),
        series(
            "Waiting, backlog and stuck tasks",
            [
                query(
                    f"sum(agent_failover_tasks_waiting_for_agent{{{SEL}}})",
                    "waiting for an agent",
                    "A",
                ),
                query(f"sum(agent_failover_tasks_backlog{{{SEL}}})", "backlog", "B"),
                query(f"sum(agent_failover_tasks_stuck{{{SEL}}})", "stuck", "C"),
            ],
            description="Tasks that must move and have nowhere to go, tasks not yet "
            "dispatched, and tasks waiting too long while slots are free.",
        ),
    ]


def recovery_row() -> tuple[str, list[Panel]]:
    return "Recovery: RTO, RPO, detection", [
        distribution(
            "RTO distribution",
            "agent_failover_rto_seconds",
            "Last heartbeat of the dead agent to its task resumed elsewhere, per moved task.",
            "s",
        ),
        series(
            "RTO p50 / p99",
            quantiles("agent_failover_rto_seconds", "RTO"),
            unit="s",
            description="Last heartbeat of the dead agent to the task resumed elsewhere.",
        ),
        distribution(
            "RPO distribution (steps lost)",
            "agent_failover_rpo_steps",
            "Steps redone per moved task: the dead attempt's last step minus the step "
            "resumed from.",
            "short",
        ),
        series(
            "RPO p50 / p99 (seconds of progress lost)",
            quantiles("agent_failover_rpo_seconds", "RPO"),
            unit="s",
            description="The dead attempt's last heartbeat minus the time of the "
            "checkpoint it resumed from.",
        ),
        series(
            "Detection delay past the timeout",
            quantiles("agent_failover_detection_delay_seconds", "detection"),
            unit="s",
            description="How long after the heartbeat timeout a dead agent was fenced.",
        ),
        series(
            "Recovery and decision apply",
            [
                *quantiles("agent_failover_recovery_seconds", "recovery"),
                query(
                    "histogram_quantile(0.99, sum by (le) (rate("
                    f"agent_failover_decision_apply_seconds_bucket{{{SEL}}}[{RATE}])))",
                    "p99 decision applied",
                    "C",
                ),
            ],
            unit="s",
            description="Decision to the moved task resumed (recovery), and decision to "
            "its re-dispatches acknowledged (apply).",
        ),
    ]


def input_row() -> tuple[str, list[Panel]]:
    return "Bad input and rejected events", [
        series(
            "Dead letters",
            [
                query(
                    "sum by (topic, reason, source) (increase("
                    f"agent_failover_dead_letters_total{{{SEL}}}[{RATE}]))",
                    "{{source}} {{topic}} {{reason}}",
                )
            ],
            description="Bad records written to the dead-letter topic, by topic, reason "
            "and who found them.",
        ),
        series(
            "Rejected events and duplicate decisions",
            [
                query(
                    "sum by (reason) (increase("
                    f"agent_failover_events_rejected_total{{{SEL}}}[{RATE}]))",
                    "rejected: {{reason}}",
                    "A",
                ),
                query(
                    f"sum(increase(agent_failover_decisions_duplicate_total{{{SEL}}}[{RATE}]))",
                    "duplicate decisions",
                    "B",
                ),
            ],
            description="Valid events not applied (fenced epoch, superseded attempt, ...) "
            "and decisions ignored because an earlier one won.",
        ),
    ]


def monitor_row() -> tuple[str, list[Panel]]:
    return "Monitor workers", [
        series(
            "Up, ready, broker reachable",
            [
                query(f"sum(up{{{SEL}}})", "up", "A"),
                query(f"sum(agent_failover_ready{{{SEL}}})", "ready", "B"),
                query(f"sum(agent_failover_broker_up{{{SEL}}})", "broker reachable", "C"),
            ],
            description="Workers scraped, ready (/readyz 200) and reaching the broker.",
            width=8,
        ),
        series(
            "Partitions owned",
            [
                query(
                    f"sum by (instance) (agent_failover_partitions_owned{{{SEL}}})",
                    "{{instance}}",
                )
            ],
            description="Agent partitions each worker owns; stacked, they add up to the "
            "partition count when every partition is owned.",
            width=8,
            stacked=True,
        ),
        series(
            "Consumer lag",
            [
                query(
                    "max by (topic) (agent_failover_consumer_lag_records{" + SEL + "})",
                    "{{topic}}",
                )
            ],
            description="Records the most lagging worker has not consumed yet, by topic.",
            width=8,
        ),
        series(
            "Detection tick and heartbeat arrival",
            [
                query(
                    "histogram_quantile(0.99, sum by (le) (rate("
                    f"agent_failover_tick_duration_seconds_bucket{{{SEL}}}[{RATE}])))",
                    "p99 tick",
                    "A",
                ),
                query(
                    "histogram_quantile(0.99, sum by (le) (rate("
                    f"agent_failover_heartbeat_arrival_lag_seconds_bucket{{{SEL}}}[{RATE}])))",
                    "p99 heartbeat arrival lag",
                    "B",
                ),
            ],
            unit="s",
            description="One detection tick's duration, and how late heartbeats arrive "
            "(monitor receipt minus the agent's send time; includes clock skew).",
        ),
        series(
            "Heartbeats consumed",
            [
                query(
                    f"sum(rate(agent_failover_heartbeats_consumed_total{{{SEL}}}[{RATE}]))",
                    "heartbeats/s",
                )
            ],
            unit="short",
            description="Valid heartbeats per second over every worker.",
        ),
    ]


def variables() -> list[db.QueryVariable | db.DatasourceVariable]:
    return [
        db.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        db.QueryVariable("namespace")
        .label("Namespace")
        .datasource(DATASOURCE)
        .query("label_values(agent_failover_build_info, namespace)")
        .refresh(dashboard.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .include_all(True)
        .all_value(".*"),
        db.QueryVariable("job")
        .label("Job")
        .datasource(DATASOURCE)
        .query('label_values(agent_failover_build_info{namespace=~"$namespace"}, job)')
        .refresh(dashboard.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .include_all(True)
        .all_value(".*"),
    ]


def build() -> db.Dashboard:
    """The whole dashboard."""
    board = (
        db.Dashboard("agent-failover")
        .uid(UID)
        .description(
            "Fleet health, failovers, RTO/RPO, detection, waiting tasks, bad input and the "
            "monitor workers of agent-failover."
        )
        .tags(["agent-failover", "kafka"])
        .refresh("30s")
        .time("now-3h", "now")
        .timezone(common.TimeZoneBrowser)
        .editable()
    )
    for variable in variables():
        board = board.with_variable(variable)
    # Rows stay expanded: a row is a header, its panels follow it at the top level.
    for title, panels in (fleet_row(), failover_row(), recovery_row(), input_row(), monitor_row()):
        board = board.with_row(db.Row(title))
        for panel in panels:
            board = board.with_panel(panel)
    return board


def render() -> str:
    """The dashboard as the JSON text kept in the chart."""
    data = json.loads(JSONEncoder(sort_keys=True, indent=2).encode(build().build()))
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def queries(text: str) -> list[str]:
    """Every Prometheus expression of a rendered dashboard (panels in rows and variables)."""
    board = json.loads(text)
    found: list[str] = []
    panels = list(board.get("panels", []))
    while panels:
        panel = panels.pop(0)
        panels.extend(panel.get("panels", []))
        found.extend(t["expr"] for t in panel.get("targets", []) if t.get("expr"))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the JSON is stale")
    parser.add_argument("--queries", action="store_true", help="print every query as JSON")
    args = parser.parse_args(argv)
    text = render()
    if args.queries:
        for expr in queries(text):
            print(json.dumps(expr))
        return 0
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT} is stale: run tools/dashboard.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
