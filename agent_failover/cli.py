"""The ``agent-failover`` command line.

Every command reads its broker from ``KAFKA_BOOTSTRAP_SERVERS`` (except ``broker`` and ``dev``,
which start the embedded one when it is unset) and the rest of its configuration from
``AGENT_FAILOVER_*`` variables; see the README's configuration reference.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson

from agent_failover import __version__
from agent_failover.config import KafkaConfig, MonitorConfig, Topics
from agent_failover.errors import AgentFailoverError


def _cmd_broker(args: argparse.Namespace) -> int:
    from agent_failover.broker.embedded import serve

    return serve(log_path=args.log_file, port=args.port, create_topics=not args.no_topics)


def _cmd_topics(args: argparse.Namespace) -> int:
    from agent_failover.topics import ensure_topics, topic_specs

    kafka = KafkaConfig.from_env()
    topics = Topics.from_env()
    created = ensure_topics(kafka, topics)
    for spec in topic_specs(topics):
        mark = "created" if spec.name in created else "exists "
        print(f"{mark}  {spec.name:<40} {spec.partitions:>3} partitions  {spec.purpose}")
    return 0


def _cmd_monitor(args: argparse.Namespace) -> int:
    from streams.runner import run_monitor

    overrides: dict[str, Any] = {}
    if args.metrics_port is not None:
        overrides["metrics_port"] = args.metrics_port
    if args.metrics_host is not None:
        overrides["metrics_host"] = args.metrics_host
    config = MonitorConfig.from_env(**overrides)
    return run_monitor(config)


def _cmd_submit(args: argparse.Namespace) -> int:
    from agent_failover.models import Task
    from agent_failover.sdk import TaskSubmitter

    kafka = KafkaConfig.from_env()
    tasks: list[Task] = []
    if args.file:
        with contextlib.ExitStack() as stack:
            source = sys.stdin if args.file == "-" else stack.enter_context(Path(args.file).open())
            for n, line in enumerate(source, 1):
                if not line.strip():
                    continue
                try:
                    tasks.append(
                        Task.from_dict({"task_id": uuid.uuid4().hex, **orjson.loads(line)})
                    )
                except (orjson.JSONDecodeError, AgentFailoverError, TypeError) as exc:
                    print(f"error: line {n} of {args.file}: {exc}", file=sys.stderr)
                    return 2
    else:
        if not args.type:
            print("error: give --type (and --payload), or --file", file=sys.stderr)
            return 2
        try:
            payload = orjson.loads(args.payload) if args.payload else None
        except orjson.JSONDecodeError as exc:
            print(f"error: --payload is not JSON: {exc}", file=sys.stderr)
            return 2
        tasks.append(
            Task(task_id=args.id or uuid.uuid4().hex, task_type=args.type, payload=payload)
        )
    with TaskSubmitter(kafka, Topics.from_env()) as submitter:
        for task in tasks:
            partition, offset = submitter.submit(task)
            print(f"{task.task_id}  partition {partition} offset {offset}")
    return 0


def _cmd_dev(args: argparse.Namespace) -> int:
    from agent_failover.dev.demo import DemoOptions, run_demo

    return run_demo(DemoOptions(log_dir=args.log_dir))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agent-failover",
        description="Kafka-native failover for fleets of AI agents.",
        epilog="Broker: KAFKA_BOOTSTRAP_SERVERS=host:port. Settings: AGENT_FAILOVER_* (README).",
    )
    parser.add_argument("--version", action="version", version=f"agent-failover {__version__}")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("AGENT_FAILOVER_LOG_LEVEL"),
        help="logging level (default: AGENT_FAILOVER_LOG_LEVEL, else INFO; WARNING for dev)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "dev",
        help="run the failover demo on the embedded broker",
        description="Start a broker, the monitor and 3 agents; SIGKILL one midway "
        "and show the failover as it happens. Exit 0 if every task completed "
        "exactly once.",
    )
    p.add_argument("--log-dir", type=Path, help="where process logs go (default: a temp dir)")
    p.set_defaults(func=_cmd_dev)

    p = sub.add_parser(
        "broker",
        help="run the embedded development broker (Tansu) alone",
        description="Start Tansu on 127.0.0.1, create the topics, print the "
        "bootstrap address and wait for Ctrl-C. Memory only: nothing survives.",
    )
    p.add_argument("--port", type=int, help="port to listen on (default: a free one)")
    p.add_argument("--log-file", type=Path, help="broker log file (default: a temp file)")
    p.add_argument("--no-topics", action="store_true", help="do not create the topics")
    p.set_defaults(func=_cmd_broker)

    p = sub.add_parser(
        "topics",
        help="create every topic (idempotent)",
        description="Create the topic set with its partitions and configs; "
        "existing topics are kept (a partition-count mismatch is an error).",
    )
    p.set_defaults(func=_cmd_topics)

    p = sub.add_parser(
        "monitor",
        help="run a monitor worker (faust)",
        description="Run one monitor worker: detection, fencing and re-dispatch. "
        "Start several for high availability; they split the agents.",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        help="port of /metrics, /healthz and /readyz (default 9108; 0 = any free port)",
    )
    p.add_argument("--metrics-host", help="address they listen on (default 0.0.0.0)")
    p.set_defaults(func=_cmd_monitor)

    p = sub.add_parser(
        "submit",
        help="submit tasks to the normal task topic",
        description="Submit one task (--type/--payload) or JSON lines "
        "({task_type, payload[, task_id]}) from a file or '-' for stdin.",
    )
    p.add_argument("--type", help="task type")
    p.add_argument("--payload", help="task payload as JSON")
    p.add_argument("--id", help="task id (default: random)")
    p.add_argument("--file", help="JSON-lines file of tasks, or - for stdin")
    p.set_defaults(func=_cmd_submit)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = args.log_level or ("WARNING" if args.command == "dev" else "INFO")
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        code: int = args.func(args)
        return code
    except AgentFailoverError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
