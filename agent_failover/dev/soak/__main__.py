"""``python -m agent_failover.dev.soak --seed N [--quick]``: run a soak, print its table.

Exit code 0 when no violation was found and every task and fault could be judged, 1 when there
are violations, 2 when the run could not judge (bad arguments, a fleet that never got ready,
tasks unfinished while every slot was busy, a fault that could not be injected).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent_failover.dev.soak.report import INCONCLUSIVE, render, write_json
from agent_failover.dev.soak.run import run_soak
from agent_failover.dev.soak.schedule import PROFILES
from agent_failover.errors import AgentFailoverError


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="python -m agent_failover.dev.soak",
        description=(
            "A seeded chaos run: 2 monitor workers and a fleet of agents on the embedded broker "
            "(or KAFKA_BOOTSTRAP_SERVERS), waves of multi-step tasks, and faults (SIGKILL, "
            "SIGSTOP past the heartbeat timeout then SIGCONT, SIGTERM, two agents killed at "
            "once, a monitor worker killed, an agent kill followed by a monitor kill). The "
            "agents' handler keeps its own ledger; the soak checks it against the topics and "
            "prints faults, completions, steps executed twice by cause, and violations."
        ),
        epilog="docs/reliability.md explains the output.",
    )
    p.add_argument("--seed", type=int, required=True, help="the schedule's seed")
    p.add_argument(
        "--quick",
        action="store_true",
        help="the quick profile (about a minute: one fault of each kind) instead of the full one",
    )
    p.add_argument(
        "--json",
        type=Path,
        metavar="PATH",
        help="where to write the result file (default: result.json in the run's log directory)",
    )
    p.add_argument(
        "--log-dir",
        type=Path,
        metavar="DIR",
        help="where the processes' logs and the ledger go (default: a new temporary directory)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one soak; see the module docstring for the exit code."""
    args = parser().parse_args(argv)
    profile = PROFILES["quick" if args.quick else "full"]
    try:
        result = run_soak(args.seed, profile, log_dir=args.log_dir)
    except (AgentFailoverError, TimeoutError) as exc:
        print(f"soak could not run: {exc}", file=sys.stderr)
        return INCONCLUSIVE
    path = args.json or result.log_dir / "result.json"
    write_json(result, path)
    print(render(result))
    print(f"result file: {path}")
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
