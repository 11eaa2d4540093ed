"""Configuration is validated up front, with errors that name the variable; one registry documents
every variable; typos are reported; secrets stay hidden."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest

from agent_failover.config import (
    SETTINGS,
    AgentConfig,
    CheckpointMode,
    CheckpointPolicy,
    KafkaConfig,
    MonitorConfig,
    Topics,
)
from agent_failover.errors import ConfigError
from agent_failover.settings import Choice, Number, Registry, Setting, Text

ROOT = Path(__file__).resolve().parents[2]
ENV = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092"}
OWNERS: dict[str, Any] = {
    "kafka": KafkaConfig,
    "topics": Topics,
    "agent": AgentConfig,
    "monitor": MonitorConfig,
}


@pytest.mark.parametrize("servers", ["", " , ", "localhost", "host:port", "h:0", "h:70000"])
def test_bad_bootstrap_servers(servers: str) -> None:
    with pytest.raises(ConfigError):
        KafkaConfig(bootstrap_servers=servers)


def test_missing_broker_says_what_to_set() -> None:
    with pytest.raises(ConfigError, match="KAFKA_BOOTSTRAP_SERVERS"):
        KafkaConfig.from_env({})


def test_password_never_in_repr() -> None:
    conf = KafkaConfig(
        bootstrap_servers="h:1",
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="u",
        sasl_password="hunter2",
    )
    assert "hunter2" not in repr(conf)
    assert "hunter2" not in repr(AgentConfig(kafka=conf, agent_id="a"))
    assert conf.as_librdkafka_dict()["sasl.password"] == "hunter2"


def test_sasl_needs_credentials() -> None:
    with pytest.raises(ConfigError, match="sasl_username"):
        KafkaConfig(bootstrap_servers="h:1", security_protocol="SASL_SSL", sasl_mechanism="PLAIN")


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({"security_protocol": "SASL_SSL"}, "AGENT_FAILOVER_KAFKA_SASL_MECHANISM"),
        (
            {"sasl_mechanism": "PLAIN", "sasl_username": "u", "sasl_password": "p"},
            "AGENT_FAILOVER_KAFKA_SECURITY_PROTOCOL",
        ),
        ({"ssl_certificate_location": "/c.pem"}, "AGENT_FAILOVER_KAFKA_SSL_KEY_LOCATION"),
        ({"ssl_key_location": "/k.pem"}, "AGENT_FAILOVER_KAFKA_SSL_CERTIFICATE_LOCATION"),
    ],
)
def test_security_settings_that_contradict_each_other_are_refused(
    settings: dict[str, str], names: str
) -> None:
    """librdkafka would ignore a SASL mechanism under PLAINTEXT, and fail late on half a pair."""
    with pytest.raises(ConfigError, match=names):
        KafkaConfig("h:1", **settings)  # type: ignore[arg-type]


def test_agent_config_from_env() -> None:
    env = {
        **ENV,
        "AGENT_FAILOVER_AGENT_ID": "worker-1",
        "AGENT_FAILOVER_CAPACITY": "3",
        "AGENT_FAILOVER_HEARTBEAT_INTERVAL": "0.25",
        "AGENT_FAILOVER_CHECKPOINT_POLICY": "every:5",
        "AGENT_FAILOVER_POOL": "standby",
        "AGENT_FAILOVER_TOPIC_PREFIX": "x.",
    }
    conf = AgentConfig.from_env(env)
    assert conf.agent_id == "worker-1"
    assert conf.capacity == 3
    assert conf.heartbeat_interval == 0.25
    assert conf.checkpoint_policy == CheckpointPolicy(CheckpointMode.INTERVAL, 5.0)
    assert conf.pool == "standby"
    assert conf.topics.heartbeats == "x.heartbeats"


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        (
            "AGENT_FAILOVER_HEARTBEAT_TIMEOUT",
            "abc",
            "AGENT_FAILOVER_HEARTBEAT_TIMEOUT must be a number of seconds from 0.05 to 3600, "
            'got "abc"',
        ),
        (
            "AGENT_FAILOVER_CAPACITY",
            "many",
            'AGENT_FAILOVER_CAPACITY must be an integer from 1 to 10,000, got "many"',
        ),
        (
            "AGENT_FAILOVER_CAPACITY",
            "0",
            'AGENT_FAILOVER_CAPACITY must be an integer from 1 to 10,000, got "0"',
        ),
        (
            "AGENT_FAILOVER_HEARTBEAT_INTERVAL",
            "-1",
            "AGENT_FAILOVER_HEARTBEAT_INTERVAL must be a number of seconds from 0.01 to 300, "
            'got "-1"',
        ),
        (
            "AGENT_FAILOVER_FETCH_WAIT_MAX_MS",
            "0.5",  # seconds given where milliseconds are expected
            'AGENT_FAILOVER_FETCH_WAIT_MAX_MS must be an integer from 1 to 10,000, got "0.5"',
        ),
        (
            "AGENT_FAILOVER_CHECKPOINT_POLICY",
            "sometimes",
            "AGENT_FAILOVER_CHECKPOINT_POLICY must be every_step, on_demand or every:<seconds>",
        ),
        (
            "AGENT_FAILOVER_CHECKPOINT_POLICY",
            "every:inf",
            "AGENT_FAILOVER_CHECKPOINT_POLICY must be every_step, on_demand or every:<seconds>",
        ),
        ("AGENT_FAILOVER_POOL", "spare", "AGENT_FAILOVER_POOL must be one of active, standby"),
        ("AGENT_FAILOVER_TOPIC_PREFIX", "a b", "AGENT_FAILOVER_TOPIC_PREFIX must be 1 to 200"),
        ("AGENT_FAILOVER_METRICS_PORT", "70000", "AGENT_FAILOVER_METRICS_PORT must be"),
        ("KAFKA_BOOTSTRAP_SERVERS", "localhost", "KAFKA_BOOTSTRAP_SERVERS must be host:port"),
        (
            "AGENT_FAILOVER_KAFKA_SECURITY_PROTOCOL",
            "TLS",
            "AGENT_FAILOVER_KAFKA_SECURITY_PROTOCOL must be one of PLAINTEXT, SSL",
        ),
    ],
)
def test_errors_name_the_variable_and_quote_the_value(var: str, value: str, message: str) -> None:
    owner = SETTINGS[var].fields[0].partition(".")[0]
    with pytest.raises(ConfigError) as caught:
        build(owner, {**ENV, var: value})
    assert str(caught.value).startswith(message)


FLOAT_SETTINGS = [
    s for s in SETTINGS if isinstance(s.parser, Number) and not s.parser.integer and s.fields
]


@pytest.mark.parametrize("setting", FLOAT_SETTINGS, ids=lambda s: s.name)
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "NaN", "1e400"])
def test_infinite_and_nan_are_refused(setting: Setting, value: str) -> None:
    owner = setting.fields[0].partition(".")[0]
    with pytest.raises(ConfigError, match=f'^{setting.name} must be .*, got "{value}"$'):
        build(owner, {**ENV, setting.name: value})


def test_values_set_in_code_meet_the_same_bounds() -> None:
    kafka = KafkaConfig("h:1")
    with pytest.raises(ConfigError, match=r"^capacity must be .*got 0 \(AGENT_FAILOVER_CAPACITY\)"):
        AgentConfig(kafka=kafka, agent_id="a", capacity=0)
    with pytest.raises(ConfigError, match="heartbeat_timeout must be a number of seconds"):
        MonitorConfig(kafka=kafka, heartbeat_timeout=float("nan"))
    with pytest.raises(ConfigError, match="interval_s"):
        CheckpointPolicy.every(float("inf"))
    with pytest.raises(ConfigError, match="connect_timeout"):
        KafkaConfig("h:1", connect_timeout=0)


def test_an_agent_refuses_an_interval_its_heartbeat_timeout_cannot_satisfy() -> None:
    names = r"AGENT_FAILOVER_HEARTBEAT_INTERVAL.*AGENT_FAILOVER_HEARTBEAT_TIMEOUT"
    with pytest.raises(ConfigError, match=names):
        AgentConfig.from_env({**ENV, "AGENT_FAILOVER_HEARTBEAT_INTERVAL": "2"})
    with pytest.raises(ConfigError, match=names):
        AgentConfig(
            kafka=KafkaConfig("h:1"), agent_id="a", heartbeat_interval=1.0, heartbeat_timeout=1.5
        )
    # At most half the timeout is fine; the timeout is the monitor's variable, read by both.
    conf = AgentConfig.from_env(
        {**ENV, "AGENT_FAILOVER_HEARTBEAT_INTERVAL": "5", "AGENT_FAILOVER_HEARTBEAT_TIMEOUT": "10"}
    )
    assert (conf.heartbeat_interval, conf.heartbeat_timeout) == (5.0, 10.0)


def test_monitor_defaults_and_cross_checks() -> None:
    conf = MonitorConfig.from_env(ENV)
    assert conf.heartbeat_timeout == 3.0
    assert conf.effective_grace_period == 0.0
    assert conf.broker_session_timeout is None  # chosen per broker by the monitor
    assert conf.effective_degraded_after == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="grace_period"):
        MonitorConfig(kafka=KafkaConfig("h:1"), grace_period=-1.0)
    with pytest.raises(ConfigError, match="broker_session_timeout"):
        MonitorConfig(kafka=KafkaConfig("h:1"), broker_session_timeout=0.0)
    with pytest.raises(ConfigError, match=r"tick_interval.*AGENT_FAILOVER_TICK_INTERVAL"):
        MonitorConfig(kafka=KafkaConfig("h:1"), heartbeat_timeout=1.0, tick_interval=0.6)
    with pytest.raises(ConfigError, match=r"degraded_after.*AGENT_FAILOVER_DEGRADED_AFTER"):
        MonitorConfig(kafka=KafkaConfig("h:1"), degraded_after=5.0)


def test_keyword_arguments_win_without_reading_the_variable() -> None:
    env = {**ENV, "AGENT_FAILOVER_CAPACITY": "not a number"}
    assert AgentConfig.from_env(env, agent_id="a", capacity=2).capacity == 2


def build(owner: str, env: dict[str, str]) -> Any:
    """The configuration object ``owner`` (``agent``, ``kafka``, ...) read from ``env``."""
    if owner == "agent" and "AGENT_FAILOVER_AGENT_ID" not in env:
        return AgentConfig.from_env(env, agent_id="a")  # not the host-pid default
    return OWNERS[owner].from_env(env)


def sample(setting: Setting) -> tuple[str, Any]:
    """A valid value other than the default, as text and as the field should hold it."""
    parser = setting.parser
    if isinstance(parser, Number):
        value: Any = int(parser.high) if parser.integer else parser.high
        return str(value), value
    if isinstance(parser, Choice):
        return parser.values[-1].lower(), parser.values[-1]
    if isinstance(parser, Text):
        return "x1", "x1"
    if setting.name == "KAFKA_BOOTSTRAP_SERVERS":
        return "other:1234", "other:1234"
    assert setting.name == "AGENT_FAILOVER_CHECKPOINT_POLICY", setting.name
    return "on_demand", CheckpointPolicy.on_demand()


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.fields], ids=lambda s: s.name)
def test_every_from_env_reads_its_variables_through_the_registry(
    setting: Setting, tmp_path: Path
) -> None:
    text, value = sample(setting)
    env = {**ENV, setting.name: text}
    if setting.name.startswith("AGENT_FAILOVER_SIGNING_KEY"):
        # A key is 16 bytes or more; a key file must exist; a second key needs a first.
        key_file = tmp_path / "key"
        key_file.write_text("k" * 32 + "\n")
        text = value = str(key_file) if setting.name.endswith("_FILE") else "k" * 32
        env[setting.name] = text
        if "PREVIOUS" in setting.name:
            env["AGENT_FAILOVER_SIGNING_KEY"] = "c" * 32
    sasl = {
        "AGENT_FAILOVER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "AGENT_FAILOVER_KAFKA_SASL_MECHANISM": "PLAIN",
        "AGENT_FAILOVER_KAFKA_SASL_USERNAME": "u",
        "AGENT_FAILOVER_KAFKA_SASL_PASSWORD": "p",
    }
    if setting.name in sasl and setting.name.endswith(("_MECHANISM", "_PROTOCOL")):
        env = {**ENV, **sasl, setting.name: text}  # a SASL protocol needs the rest of SASL
    if setting.name.startswith("AGENT_FAILOVER_KAFKA_SSL_") and "PASSWORD" not in setting.name:
        # A client certificate and its key go together.
        env |= {
            "AGENT_FAILOVER_KAFKA_SSL_CERTIFICATE_LOCATION": "x1",
            "AGENT_FAILOVER_KAFKA_SSL_KEY_LOCATION": "x1",
        }
    if setting.name == "AGENT_FAILOVER_HEARTBEAT_TIMEOUT":
        env["AGENT_FAILOVER_HEARTBEAT_TIMEOUT"] = text = "600"  # above the other bounds
        value = 600.0
    if setting.name in (
        "AGENT_FAILOVER_TICK_INTERVAL",
        "AGENT_FAILOVER_DEGRADED_AFTER",
        "AGENT_FAILOVER_HEARTBEAT_INTERVAL",  # at most half the timeout
    ):
        env["AGENT_FAILOVER_HEARTBEAT_TIMEOUT"] = "3600"
    if setting.name == "AGENT_FAILOVER_DEGRADED_AFTER":
        env[setting.name], value = "1800", 1800.0  # below the timeout
    for target in setting.fields:
        owner, _, field = target.partition(".")
        assert getattr(build(owner, env), field) == value, target


def test_every_config_field_read_from_the_environment_is_registered() -> None:
    for owner, cls in OWNERS.items():
        assert set(cls.ENV.values()) <= {s.name for s in SETTINGS}, owner
        assert SETTINGS.fields(owner) == cls.ENV


#: Test modules that use unregistered names on purpose.
DELIBERATE_TYPOS = {"test_config.py", "test_cli.py", "test_logs.py"}


def test_every_variable_the_code_mentions_is_registered() -> None:
    mentioned: set[str] = set()
    for folder in ("agent_failover", "streams", "bench", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name not in DELIBERATE_TYPOS:
                mentioned |= set(re.findall(r"\bAGENT_FAILOVER_[A-Z0-9_]+\b", path.read_text()))
    mentioned = {name for name in mentioned if not name.endswith("_")}  # prefixes in prose
    assert mentioned, "the scan found nothing: is the pattern right?"
    assert mentioned - {s.name for s in SETTINGS} == set()


def test_readme_table_is_the_registry() -> None:
    readme = (ROOT / "README.md").read_text()
    begin = readme.index("<!-- settings:begin")
    table = readme[readme.index("\n", begin) + 1 : readme.index("<!-- settings:end -->")]
    assert table == SETTINGS.markdown(), (
        "README.md's configuration table differs from agent_failover.config.SETTINGS: "
        "replace it with the output of "
        "python -c 'from agent_failover.config import SETTINGS; print(SETTINGS.markdown())'"
    )


def test_unknown_variables_get_a_suggestion() -> None:
    env = {
        **ENV,
        "AGENT_FAILOVER_HEARTBEAT_INTERVALL": "2",
        "AGENT_FAILOVER_NOT_A_SETTING": "s3cret",
        "AGENT_FAILOVER_CAPACITY": "2",
    }
    assert SETTINGS.unknown(env) == [
        ("AGENT_FAILOVER_HEARTBEAT_INTERVALL", "AGENT_FAILOVER_HEARTBEAT_INTERVAL"),
        ("AGENT_FAILOVER_NOT_A_SETTING", None),
    ]


def test_unknown_variables_are_warned_once_without_their_value(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = Registry(SETTINGS)  # a fresh "warned once" memory
    env = {**ENV, "AGENT_FAILOVER_CAPASITY": "s3cret-value"}
    with caplog.at_level(logging.WARNING, logger="agent_failover.config"):
        registry.warn_unknown(env)
        registry.warn_unknown(env)
    assert [r.getMessage() for r in caplog.records] == [
        "unknown variable AGENT_FAILOVER_CAPASITY is ignored "
        "(did you mean AGENT_FAILOVER_CAPACITY?)"
    ]
    assert "s3cret" not in caplog.text


def test_from_env_warns_about_unknown_variables(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="agent_failover.config"):
        AgentConfig.from_env({**ENV, "AGENT_FAILOVER_POOLL": "standby"}, agent_id="a")
    assert "AGENT_FAILOVER_POOLL is ignored (did you mean AGENT_FAILOVER_POOL?)" in caplog.text


def test_a_secret_is_never_quoted() -> None:
    secret = Setting("AGENT_FAILOVER_X", Number(0, 1), "", "all", "", secret=True)
    with pytest.raises(ConfigError) as caught:
        secret.parse("hunter2")
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        secret.check("x", 7.5)
    assert "7.5" not in str(caught.value)


def test_topics_names_share_one_prefix() -> None:
    topics = Topics(prefix="p.")
    names = [
        topics.heartbeats,
        topics.task_events,
        topics.control,
        topics.priority,
        topics.tasks,
        topics.checkpoints,
        topics.failovers,
        topics.dead_letter,
        topics.fleet,
    ]
    assert all(n.startswith("p.") for n in names)
    assert len(set(names)) == len(names)
