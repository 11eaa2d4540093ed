"""Every environment variable agent-failover reads: :data:`SETTINGS`.

Each entry names the variable, its type and bounds, its default, who reads it and what it does.
The configuration objects (:mod:`agent_failover.config`) read through it, the unknown-variable
check compares against it, and the README's configuration table is generated from it
(:meth:`~agent_failover.settings.Registry.markdown`). The machinery (parsers, bounds, the
registry) is :mod:`agent_failover.settings`.
"""

from __future__ import annotations

from typing import Any

from agent_failover.checkpoint_policy import CheckpointPolicy
from agent_failover.errors import ConfigError
from agent_failover.settings import (
    PORT,
    BootstrapServers,
    Choice,
    Custom,
    Number,
    Registry,
    Setting,
    Text,
    count,
    seconds,
)

ENV_PREFIX = "AGENT_FAILOVER_"
BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
_TOPIC_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"


def _policy(raw: str) -> CheckpointPolicy:
    try:
        return CheckpointPolicy.parse(raw)
    except ConfigError:
        raise ConfigError(raw) from None


_READERS = {"kafka": "all", "topics": "all", "agent": "agent", "monitor": "monitor"}


def _s(
    name: str, fields: str, parser: Any, default: str, help: str, used_by: str = "", **kw: Any
) -> Setting:
    """A setting for ``AGENT_FAILOVER_<name>`` setting ``fields`` (``owner.field`` words)."""
    targets = tuple(fields.split())
    readers = dict.fromkeys(_READERS[t.partition(".")[0]] for t in targets)
    used_by = used_by or ", ".join(readers)
    full = name if name == BOOTSTRAP_ENV else ENV_PREFIX + name
    return Setting(full, parser, default, used_by, help, fields=targets, **kw)


#: Every environment variable agent-failover reads. Bounds are generous sanity limits: they catch
#: a unit mistake (milliseconds given as seconds) or a typo, not a tuning choice.
# fmt: off
SETTINGS = Registry([
    _s(BOOTSTRAP_ENV, "kafka.bootstrap_servers", BootstrapServers(), "required",
       "the Kafka cluster's bootstrap servers"),
    _s("CONNECT_TIMEOUT", "kafka.connect_timeout", seconds(0.5, 300), "5",
       "how long start-up waits for the broker to answer before it fails"),
    _s("KAFKA_SECURITY_PROTOCOL", "kafka.security_protocol",
       Choice(("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")), "`PLAINTEXT`",
       "how clients talk to the broker"),
    _s("KAFKA_SASL_MECHANISM", "kafka.sasl_mechanism",
       Choice(("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")), "",
       "SASL mechanism (needs the username and password)"),
    _s("KAFKA_SASL_USERNAME", "kafka.sasl_username", Text(), "", "SASL user name"),
    _s("KAFKA_SASL_PASSWORD", "kafka.sasl_password", Text(), "", "SASL password (never logged)",
       secret=True),
    _s("KAFKA_SSL_CA_LOCATION", "kafka.ssl_ca_location", Text(), "",
       "CA bundle to verify the broker with"),
    _s("KAFKA_SSL_CERTIFICATE_LOCATION", "kafka.ssl_certificate_location", Text(), "",
       "client certificate for mutual TLS (PEM file)"),
    _s("KAFKA_SSL_KEY_LOCATION", "kafka.ssl_key_location", Text(), "",
       "private key of the client certificate (PEM file)"),
    _s("KAFKA_SSL_KEY_PASSWORD", "kafka.ssl_key_password", Text(), "",
       "password of that private key (never logged)", secret=True),
    _s("SIGNING_KEY", "kafka.signing_key", Text(), "off",
       "the fleet's key: every record written is signed with it, every record read must be "
       "signed (at least 16 bytes; never logged; docs/security.md)", secret=True),
    _s("SIGNING_KEY_FILE", "kafka.signing_key_file", Text(), "",
       "file holding that key instead (a mounted Secret; surrounding blanks ignored)"),
    _s("SIGNING_KEY_PREVIOUS", "kafka.signing_key_previous", Text(), "",
       "a second key accepted when reading, never used to sign: the old key during a rotation "
       "(never logged)", secret=True),
    _s("SIGNING_KEY_PREVIOUS_FILE", "kafka.signing_key_previous_file", Text(), "",
       "file holding that second key instead"),
    _s("TOPIC_PREFIX", "topics.prefix", Text(200, _TOPIC_CHARS, "a-z A-Z 0-9 . _ -"), "`af.`",
       "prefix of every topic name"),
    _s("AGENT_PARTITIONS", "topics.agent_partitions", count(10_000), "8",
       "partitions of heartbeats, task-events, control, tasks.priority"),
    _s("TASK_PARTITIONS", "topics.task_partitions", count(10_000), "8",
       "partitions of tasks, tasks.assigned, outcomes (how many monitor workers share the intake)"),
    _s("CHECKPOINT_PARTITIONS", "topics.checkpoint_partitions", count(10_000), "8",
       "partitions of the checkpoints topic"),
    _s("REPLICATION_FACTOR", "topics.replication_factor", count(100), "1",
       "replication factor of created topics", "`topics`, monitor"),
    _s("AGENT_ID", "agent.agent_id", Text(249),
       "`POD_NAME` (set it from the pod name with the downward API), else `<host>-<pid>`",
       "stable agent identity"),
    _s("CAPACITY", "agent.capacity", count(10_000), "1", "tasks run concurrently"),
    _s("HEARTBEAT_INTERVAL", "agent.heartbeat_interval", seconds(0.01, 300), "1.0",
       "seconds between heartbeats"),
    _s("CHECKPOINT_POLICY", "agent.checkpoint_policy",
       Custom("every_step, on_demand or every:<seconds> (0.001 to 86400)", _policy),
       "`every_step`", "when `ctx.progress()` writes a durable checkpoint"),
    _s("POOL", "agent.pool", Choice(("active", "standby")), "`active`",
       "`standby` agents get only failover work, never new work"),
    _s("HANDOFF_WAIT", "agent.handoff_wait", seconds(0, 3600), "10",
       "on SIGTERM, seconds running handlers get to finish the step in flight (its checkpoint) "
       "before their tasks are released (0: release at once, the step is redone elsewhere)"),
    _s("FETCH_WAIT_MAX_MS", "agent.fetch_wait_max_ms", Number(1, 10_000, integer=True),
       "500, 10 on Tansu", "fetch wait of the priority, control and checkpoint consumers (ms)"),
    _s("HEARTBEAT_TIMEOUT", "monitor.heartbeat_timeout agent.heartbeat_timeout",
       seconds(0.05, 3600), "3.0",
       "seconds without a heartbeat before an agent is failed; agents need the monitor's value "
       "(their lease rests on it) and a heartbeat interval of at most half of it",
       "agent, monitor"),
    _s("DEGRADED_AFTER", "monitor.degraded_after", seconds(0, 3600, low_open=True),
       "timeout / 3", "seconds without a heartbeat before it is degraded (below the timeout)"),
    _s("TICK_INTERVAL", "monitor.tick_interval", seconds(0.001, 60), "0.05",
       "how often detection runs (at most half the timeout)"),
    _s("GRACE_PERIOD", "monitor.grace_period", seconds(0, 3600), "0",
       "extra seconds before silence counts after taking over partitions or a stall (an agent "
       "not heard yet is silent from the takeover anyway)"),
    _s("MONITOR_APP_ID", "monitor.app_id", Text(249), "`agent-failover-monitor`",
       "faust app id (group and changelog names)"),
    _s("MONITOR_SESSION_TIMEOUT", "monitor.broker_session_timeout", seconds(1, 1800),
       "2.0 on Tansu, else 6.0",
       "the monitor workers' own group session timeout: a dead worker's partitions move after it "
       "plus a rebalance"),
    _s("METRICS_HOST", "monitor.metrics_host", Text(253), "`0.0.0.0`",
       "address of /metrics, /healthz and /readyz (`--metrics-host`; 0.0.0.0: every interface)"),
    _s("METRICS_PORT", "monitor.metrics_port", PORT, "9108",
       "port of /metrics, /healthz and /readyz (`--metrics-port`; 0: any free port)"),
    _s("STUCK_AFTER", "monitor.stuck_after", seconds(0.001, 86400), "30",
       "new work (or a move) waiting this long while agents have free slots counts as stuck"),
    _s("WEB_PORT", "monitor.web_port", PORT, "off", "faust's web server port"),
    _s("MONITOR_DATA_DIR", "monitor.data_dir", Text(), "`.agent-failover-monitor`",
       "faust data directory"),
    _s("LOG_LEVEL", "", Choice(LOG_LEVELS), "`INFO`",
       "logging level of agent-failover, faust and librdkafka in the `agent-failover` commands "
       "and wherever `setup_logging()` is called (`--log-level`)", "all"),
    _s("LOG_FORMAT", "", Choice(LOG_FORMATS), "`text`",
       "`json`: one JSON object per line, for log shippers (`--log-format`)", "all"),
    _s("BROKER_IS_TANSU", "", Choice(("1", "0", "true", "false", "yes", "no")), "detected",
       "force the Tansu workarounds on (1) or off (0)", "all"),
    _s("TEST_BROKER", "", Choice(("embedded", "tansu", "testcontainers")), "`embedded`",
       "the broker the test suite starts when `KAFKA_BOOTSTRAP_SERVERS` is unset", "tests"),
    _s("KAFKA_IMAGE", "", Text(), "`confluentinc/cp-kafka:7.6.0`",
       "image of the testcontainers broker", "tests"),
    _s("FUZZ_EXAMPLES", "", Number(0, 1_000_000, integer=True), "per test",
       "examples per property of the hostile-record tests (more: a deeper run)", "tests"),
    _s("TOOLS_CACHE", "", Text(), "`${XDG_CACHE_HOME:-~/.cache}/agent-failover`",
       "where `make ops-tools` installs helm, promtool, Alertmanager and the validators", "tests"),
    _s("DEMO_RESULTS_TOPIC", "", Text(249), "set by the demo",
       "where a demo agent writes each step's result", "demo"),
    _s("DEMO_LEDGER_DIR", "", Text(), "set by the soak",
       "where a demo agent also records each step, fsynced before its checkpoint", "demo"),
    _s("DEMO_STEP_SECONDS", "", Text(), "`0.2,0.4`",
       "min,max duration of a demo agent's simulated model call", "demo"),
])
# fmt: on
