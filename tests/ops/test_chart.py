"""The chart with helm v4 and helm v3: lint, render, what each configuration produces, and the
values the schema refuses (with a message naming the offending key)."""

from __future__ import annotations

import json

import pytest

from tests.ops.conftest import (
    CHART,
    SCENARIOS,
    OpsTools,
    container_env,
    find,
    helm_run,
    render,
    render_text,
    set_args,
)

# The monitor's environment (metrics contract): every variable must be reachable from values.
_CONTRACT_NAMES = """
TOPIC_PREFIX AGENT_PARTITIONS TASK_PARTITIONS CHECKPOINT_PARTITIONS REPLICATION_FACTOR
KAFKA_SECURITY_PROTOCOL KAFKA_SASL_MECHANISM KAFKA_SASL_USERNAME KAFKA_SASL_PASSWORD
KAFKA_SSL_CA_LOCATION KAFKA_SSL_CERTIFICATE_LOCATION KAFKA_SSL_KEY_LOCATION KAFKA_SSL_KEY_PASSWORD
HEARTBEAT_TIMEOUT DEGRADED_AFTER TICK_INTERVAL GRACE_PERIOD MONITOR_APP_ID MONITOR_SESSION_TIMEOUT
METRICS_HOST METRICS_PORT WEB_PORT MONITOR_DATA_DIR LOG_LEVEL LOG_FORMAT STUCK_AFTER SIGNING_KEY
"""
CONTRACT_VARIABLES = {"KAFKA_BOOTSTRAP_SERVERS"} | {
    "AGENT_FAILOVER_" + name for name in _CONTRACT_NAMES.split()
}
SECRET_VARIABLES = {
    "AGENT_FAILOVER_KAFKA_SASL_USERNAME",
    "AGENT_FAILOVER_KAFKA_SASL_PASSWORD",
    "AGENT_FAILOVER_KAFKA_SSL_KEY_PASSWORD",
    "AGENT_FAILOVER_SIGNING_KEY",
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_lint_strict(helm: str, scenario: str) -> None:
    done = helm_run(helm, "lint", "--strict", str(CHART), *set_args(SCENARIOS[scenario]))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


def test_v3_and_v4_render_the_same(ops_tools: OpsTools) -> None:
    for scenario, sets in SCENARIOS.items():
        v4 = render_text(ops_tools("HELM_V4"), sets)
        v3 = render_text(ops_tools("HELM_V3"), sets)
        assert v4 == v3, f"helm v3 and v4 render {scenario} differently"


def test_defaults(helm: str) -> None:
    docs = render(helm, SCENARIOS["defaults"])
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == [
        "Deployment",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]
    monitor = find(docs, "Deployment", "-monitor")
    spec = monitor["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert monitor["spec"]["replicas"] == 2
    assert container["args"] == ["monitor"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["ports"] == [{"name": "metrics", "containerPort": 9108, "protocol": "TCP"}]
    assert spec["terminationGracePeriodSeconds"] == 30
    # Non-root, read-only root filesystem, nothing to escalate to.
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    env = container_env(monitor)
    data_dir = env["AGENT_FAILOVER_MONITOR_DATA_DIR"]["value"]
    assert "emptyDir" in volumes[mounts[data_dir]] and "emptyDir" in volumes[mounts["/tmp"]]
    assert not any("persistentVolumeClaim" in v for v in volumes.values())
    # Workers spread over nodes, one at a time in a drain.
    term = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert find(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    # No Kubernetes API access today: an empty Role and no token in the pods.
    assert find(docs, "Role")["rules"] == []
    assert spec["automountServiceAccountToken"] is False
    assert find(docs, "ServiceAccount")["automountServiceAccountToken"] is False
    # The monitor needs no agent id.
    assert "AGENT_FAILOVER_AGENT_ID" not in env and "POD_NAME" not in env
    assert env["KAFKA_BOOTSTRAP_SERVERS"]["value"] == "kafka-0.kafka:9092,kafka-1.kafka:9092"
    service = find(docs, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert service["spec"]["selector"] == monitor["spec"]["selector"]["matchLabels"]


def test_replicas(helm: str) -> None:
    docs = render(helm, SCENARIOS["replicas-3"])
    assert find(docs, "Deployment", "-monitor")["spec"]["replicas"] == 3


def test_sasl_and_signing_key_come_from_secrets(helm: str) -> None:
    env = container_env(find(render(helm, SCENARIOS["sasl-secret"]), "Deployment", "-monitor"))
    assert env["AGENT_FAILOVER_KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    assert env["AGENT_FAILOVER_KAFKA_SASL_MECHANISM"]["value"] == "SCRAM-SHA-512"
    for name, secret, key in (
        ("AGENT_FAILOVER_KAFKA_SASL_USERNAME", "kafka-credentials", "username"),
        ("AGENT_FAILOVER_KAFKA_SASL_PASSWORD", "kafka-credentials", "password"),
        ("AGENT_FAILOVER_SIGNING_KEY", "decision-signing", "signing-key"),
    ):
        assert env[name] == {
            "name": name,
            "valueFrom": {"secretKeyRef": {"name": secret, "key": key}},
        }


def test_tls_files_come_from_a_mounted_secret(helm: str) -> None:
    monitor = find(render(helm, SCENARIOS["tls-secret"]), "Deployment", "-monitor")
    env = container_env(monitor)
    spec = monitor["spec"]["template"]["spec"]
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "kafka-tls")
    volume = next(v for v in spec["volumes"] if v["name"] == "kafka-tls")
    assert volume["secret"]["secretName"] == "kafka-tls" and mount["readOnly"] is True
    base = mount["mountPath"]
    assert env["AGENT_FAILOVER_KAFKA_SSL_CA_LOCATION"]["value"] == f"{base}/ca.crt"
    assert env["AGENT_FAILOVER_KAFKA_SSL_CERTIFICATE_LOCATION"]["value"] == f"{base}/tls.crt"
    assert env["AGENT_FAILOVER_KAFKA_SSL_KEY_LOCATION"]["value"] == f"{base}/tls.key"
    assert env["AGENT_FAILOVER_KAFKA_SSL_KEY_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "kafka-tls",
        "key": "key-password",
    }


def test_monitoring_objects(helm: str) -> None:
    docs = render(helm, SCENARIOS["monitoring"])
    service_monitor = find(docs, "ServiceMonitor")
    assert service_monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert service_monitor["spec"]["endpoints"][0]["port"] == "metrics"
    service = find(docs, "Service")
    for key, value in service_monitor["spec"]["selector"]["matchLabels"].items():
        assert service["metadata"]["labels"][key] == value
    rules = find(docs, "PrometheusRule")["spec"]["groups"][0]["rules"]
    assert len(rules) == 12
    for rule in rules:
        assert rule["labels"]["team"] == "platform"
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
    dashboard = find(docs, "ConfigMap", "-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "agent-failover"}
    shipped = json.loads(dashboard["data"]["agent-failover.json"])
    committed = json.loads((CHART / "dashboards/agent-failover.json").read_text())
    assert shipped == committed


def test_alerts_follow_values(helm: str) -> None:
    docs = render(
        helm,
        [
            "prometheusRule.enabled=true",
            "prometheusRule.alerts.noHealthyAgent.for=30s",
            "prometheusRule.alerts.consumerLagHigh.threshold=250",
            "prometheusRule.alerts.tasksStuck.enabled=false",
            "prometheusRule.job=custom-job",
            "prometheusRule.runbookBaseUrl=https://runbooks.example/operations.md",
        ],
    )
    rules = {r["alert"]: r for r in find(docs, "PrometheusRule")["spec"]["groups"][0]["rules"]}
    assert "AgentFailoverTasksStuck" not in rules and len(rules) == 11
    assert rules["AgentFailoverNoHealthyAgent"]["for"] == "30s"
    assert rules["AgentFailoverConsumerLagHigh"]["expr"].endswith("> 250")
    assert 'job="custom-job", namespace="ops"' in rules["AgentFailoverBrokerUnreachable"]["expr"]
    assert (
        rules["AgentFailoverMonitorDown"]["annotations"]["runbook_url"]
        == "https://runbooks.example/operations.md#agentfailovermonitordown"
    )


def test_example_agent(helm: str) -> None:
    docs = render(helm, SCENARIOS["example-agent"])
    agent = find(docs, "Deployment", "-agent")
    spec = agent["spec"]["template"]["spec"]
    container = spec["containers"][0]
    env = container_env(agent)
    assert container["image"] == "registry.example/agents/summariser:1.4.2"
    # The agent id is the pod name, read by the SDK from POD_NAME.
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert "AGENT_FAILOVER_AGENT_ID" not in env
    assert env["AGENT_FAILOVER_CAPACITY"]["value"] == "4"
    assert env["AGENT_FAILOVER_HANDOFF_WAIT"]["value"] == "5"
    assert env["AGENT_FAILOVER_POOL"]["value"] == "standby"
    monitor_env = container_env(find(docs, "Deployment", "-monitor"))
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "AGENT_FAILOVER_TOPIC_PREFIX"):
        assert env[name] == monitor_env[name]
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["automountServiceAccountToken"] is False
    assert "AGENT_FAILOVER_SIGNING_KEY" not in env  # no key configured: none anywhere


def test_the_example_agent_holds_the_monitors_signing_key(helm: str) -> None:
    """A fleet that signs must sign everywhere: an agent without the key is refused."""
    docs = render(helm, [*SCENARIOS["example-agent"], "monitor.signingKey.existingSecret=fleet"])
    agent_env = container_env(find(docs, "Deployment", "-agent"))
    monitor_env = container_env(find(docs, "Deployment", "-monitor"))
    assert agent_env["AGENT_FAILOVER_SIGNING_KEY"] == monitor_env["AGENT_FAILOVER_SIGNING_KEY"]
    assert agent_env["AGENT_FAILOVER_SIGNING_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "fleet", "key": "signing-key"}
    }


def test_every_monitor_variable_is_reachable(helm: str) -> None:
    """With every optional setting given, the monitor gets every variable of the contract."""
    sets = [
        *SCENARIOS["sasl-secret"][1:],
        *SCENARIOS["tls-secret"][1:],
        "monitor.config.degradedAfter=1",
        "monitor.config.gracePeriod=3",
        "monitor.config.webPort=6066",
        "monitor.extraEnv[0].name=EXTRA_SETTING",
        "monitor.extraEnv[0].value=on",
    ]
    env = container_env(find(render(helm, sets), "Deployment", "-monitor"))
    assert set(env) >= CONTRACT_VARIABLES, sorted(CONTRACT_VARIABLES - set(env))
    assert env["EXTRA_SETTING"]["value"] == "on"
    for name in SECRET_VARIABLES:
        assert "value" not in env[name] and "secretKeyRef" in env[name]["valueFrom"], name


def test_null_settings_are_left_to_the_program(helm: str) -> None:
    env = container_env(find(render(helm, []), "Deployment", "-monitor"))
    for name in ("DEGRADED_AFTER", "GRACE_PERIOD", "WEB_PORT", "SIGNING_KEY"):
        assert "AGENT_FAILOVER_" + name not in env


def test_no_secret_material_is_rendered(helm: str) -> None:
    for sets in SCENARIOS.values():
        assert all(d["kind"] != "Secret" for d in render(helm, sets))


# (values, the key the error must name). Messages differ between helm v3 and v4; both name the
# offending key, so the check is on that name.
REFUSED = {
    "no bootstrap servers": ([], "bootstrapServers", False),
    "bootstrap without a port": (["kafka.bootstrapServers=kafka"], "bootstrapServers", False),
    "inline SASL password": (["kafka.sasl.password=hunter2"], "password", True),
    "inline SASL username": (["kafka.sasl.username=svc"], "username", True),
    "SASL without a Secret": (["kafka.sasl.mechanism=PLAIN"], "existingSecret", True),
    "SASL protocol without mechanism": (["kafka.securityProtocol=SASL_SSL"], "mechanism", True),
    "unknown protocol": (["kafka.securityProtocol=TLS"], "securityProtocol", True),
    "inline signing key": (["monitor.signingKey.value=abc"], "value", True),
    "inline password in extraEnv": (
        ["monitor.extraEnv[0].name=DB_PASSWORD", "monitor.extraEnv[0].value=x"],
        "valueFrom",
        True,
    ),
    "negative replicas": (["monitor.replicas=-1"], "replicas", True),
    "zero heartbeat timeout": (["monitor.config.heartbeatTimeout=0"], "heartbeatTimeout", True),
    "port out of range": (["monitor.config.metricsPort=70000"], "metricsPort", True),
    "unknown log format": (["monitor.config.logFormat=xml"], "logFormat", True),
    "bad alert duration": (["prometheusRule.alerts.monitorDown.for=5 minutes"], "for", True),
    "unknown key": (["monitor.replica=3"], "replica", True),
    "agent without image": (["agent.enabled=true"], "repository", True),
    "bad checkpoint policy": (
        ["agent.config.checkpointPolicy=sometimes"],
        "checkpointPolicy",
        True,
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_schema_refuses(helm: str, case: str) -> None:
    sets, key, bootstrap = REFUSED[case]
    done = helm_run(helm, "template", "af", str(CHART), *set_args(sets, bootstrap=bootstrap))
    assert done.returncode != 0, f"{case}: accepted"
    assert "values don't meet the specifications of the schema" in done.stderr, done.stderr
    assert key in done.stderr, done.stderr
