"""The ops checks' fixtures: the real tools (installed once by tools/install-ops-tools.sh into a
cache outside the repository) and the chart rendered by them.

A tool that cannot be installed on this machine skips the checks that need it, with the
installer's reason; under ``CI=true`` the same is a failure, so a green CI run means every check
ran.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm/agent-failover"
INSTALLER = REPO / "tools/install-ops-tools.sh"
RELEASE = "af"
NAMESPACE = "ops"
BOOTSTRAP = "kafka-0.kafka:9092,kafka-1.kafka:9092"

# The value sets every check renders: the defaults (plus the one required value) and the
# non-default configurations the chart promises to support.
SCENARIOS: dict[str, list[str]] = {
    "defaults": [],
    "replicas-3": ["monitor.replicas=3", "monitor.podDisruptionBudget.maxUnavailable=1"],
    "sasl-secret": [
        "kafka.securityProtocol=SASL_SSL",
        "kafka.sasl.mechanism=SCRAM-SHA-512",
        "kafka.sasl.existingSecret=kafka-credentials",
        "monitor.signingKey.existingSecret=decision-signing",
    ],
    "tls-secret": [
        "kafka.securityProtocol=SSL",
        "kafka.tls.existingSecret=kafka-tls",
        "kafka.tls.certKey=tls.crt",
        "kafka.tls.keyKey=tls.key",
        "kafka.tls.keyPasswordKey=key-password",
    ],
    "monitoring": [
        "serviceMonitor.enabled=true",
        "serviceMonitor.labels.release=kube-prometheus-stack",
        "prometheusRule.enabled=true",
        "prometheusRule.labels.release=kube-prometheus-stack",
        "prometheusRule.additionalAlertLabels.team=platform",
        "dashboard.enabled=true",
        "dashboard.annotations.grafana_folder=agent-failover",
    ],
    "example-agent": [
        "agent.enabled=true",
        "agent.image.repository=registry.example/agents/summariser",
        "agent.image.tag=1.4.2",
        "agent.config.capacity=4",
        "agent.config.handoffWait=5",
        "agent.config.pool=standby",
    ],
}


def tools_cache() -> Path:
    """Where the installer puts the tools (the same rule as tools/install-ops-tools.sh)."""
    if explicit := os.environ.get("AGENT_FAILOVER_TOOLS_CACHE"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "agent-failover"


@dataclasses.dataclass(frozen=True)
class OpsTools:
    """Paths of the installed tools, and why the others are missing."""

    paths: dict[str, str]
    skipped: dict[str, str]

    def __call__(self, name: str) -> str:
        """The tool's path; skips the test (fails it under CI=true) when it is missing."""
        if name in self.paths:
            return self.paths[name]
        reason = f"{name} is not installed: {self.skipped.get(name, 'unknown reason')}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: every ops tool must install)")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def ops_tools() -> OpsTools:
    """Run the installer (quick once the cache is full) and read what it reports."""
    done = subprocess.run(
        ["bash", str(INSTALLER)], capture_output=True, text=True, timeout=900, check=False
    )
    env_file = tools_cache() / "ops-tools.env"
    if done.returncode != 0 or not env_file.exists():
        pytest.fail(f"{INSTALLER} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    paths: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for line in env_file.read_text().splitlines():
        name, _, value = line.partition("=")
        if name.startswith("SKIP_"):
            skipped[name[5:]] = " ".join(shlex.split(value))
        elif name:
            paths[name] = value
    return OpsTools(paths, skipped)


HELMS = ["HELM_V4", "HELM_V3"]


@pytest.fixture(params=HELMS)
def helm(request: pytest.FixtureRequest, ops_tools: OpsTools) -> str:
    """Each check that takes this runs with helm v4 and with helm v3."""
    return ops_tools(request.param)


def set_args(sets: Sequence[str], *, bootstrap: bool = True) -> list[str]:
    """``--set`` arguments: the required bootstrap servers, then ``sets``."""
    # helm's --set splits on commas: the list of servers keeps its commas escaped.
    servers = BOOTSTRAP.replace(",", "\\,")
    args = ["--set", f"kafka.bootstrapServers={servers}"] if bootstrap else []
    for item in sets:
        args += ["--set", item]
    return args


def helm_run(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run helm with a throwaway home (no user repositories or plugins leak in)."""
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(tools_cache() / "helm-home/cache"),
        "HELM_CONFIG_HOME": str(tools_cache() / "helm-home/config"),
        "HELM_DATA_HOME": str(tools_cache() / "helm-home/data"),
    }
    return subprocess.run(
        [helm, *args], capture_output=True, text=True, timeout=120, check=False, env=env
    )


def render_text(helm: str, sets: Sequence[str], *, bootstrap: bool = True) -> str:
    """``helm template`` of the chart; fails the test with helm's message if it fails."""
    done = helm_run(
        helm,
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        *set_args(sets, bootstrap=bootstrap),
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def render(helm: str, sets: Sequence[str]) -> list[dict[str, Any]]:
    """The rendered manifests as objects."""
    return [d for d in yaml.safe_load_all(render_text(helm, sets)) if d]


def find(docs: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    """The one object of ``kind`` whose name ends with ``suffix``."""
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    assert len(matches) == 1, f"{len(matches)} {kind} objects named *{suffix}"
    return matches[0]


def container_env(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The first container's env entries by name."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e for e in container.get("env", [])}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is an ops check (`make helm-check` runs them alone)."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.ops)
