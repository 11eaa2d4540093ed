"""Every rendered manifest validated offline: core kinds with kubernetes-validate --strict for each
Kubernetes version the chart claims (Chart.yaml kubeVersion) that kubernetes-validate ships, the
prometheus-operator kinds against the operator's CRD schemas (tools/validate_crds.py)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.ops.conftest import CHART, REPO, SCENARIOS, OpsTools, render_text

CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}


def claimed_minimum() -> tuple[int, int]:
    """The lowest Kubernetes minor the chart claims (kubeVersion: ">=1.29.0-0")."""
    kube = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    match = re.fullmatch(r">=\s*(\d+)\.(\d+)\.\d+(-0)?", kube)
    assert match, f"kubeVersion {kube!r}: expected a lower bound only"
    return int(match[1]), int(match[2])


def shipped_versions(kubernetes_validate: str) -> list[str]:
    """The Kubernetes versions kubernetes-validate has strict schemas for, from the claimed one."""
    python = Path(kubernetes_validate).parent / "python"
    code = (
        "import importlib.resources as r, kubernetes_validate as k;"
        "print('\\n'.join(p.name for p in (r.files(k) / 'kubernetes-json-schema').iterdir()))"
    )
    names = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    low = claimed_minimum()
    versions = sorted(
        {
            (int(m[1]), int(m[2]))
            for n in names
            if (m := re.fullmatch(r"v(\d+)\.(\d+)\.0-local-strict", n))
        }
    )
    return [f"{a}.{b}.0" for a, b in versions if (a, b) >= low]


@pytest.fixture(scope="module")
def rendered(ops_tools: OpsTools, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each scenario rendered (helm v4; the chart tests prove v3 renders the same) to a file."""
    out = tmp_path_factory.mktemp("rendered")
    files = {}
    for scenario, sets in SCENARIOS.items():
        path = out / f"{scenario}.yaml"
        path.write_text(render_text(ops_tools("HELM_V4"), sets))
        files[scenario] = path
    return files


def test_claims_versions_that_are_checked(ops_tools: OpsTools) -> None:
    versions = shipped_versions(ops_tools("KUBERNETES_VALIDATE"))
    assert versions[0] == "{}.{}.0".format(*claimed_minimum())
    assert len(versions) >= 5, versions


def test_core_kinds_validate_strictly(ops_tools: OpsTools, rendered: dict[str, Path]) -> None:
    tool = ops_tools("KUBERNETES_VALIDATE")
    core = 0
    for path in rendered.values():
        core += sum(
            1 for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] not in CRD_KINDS
        )
    for version in shipped_versions(tool):
        done = subprocess.run(
            [tool, "--strict", "--kubernetes-version", version, *map(str, rendered.values())],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, output
        passed = len(re.findall(r"^INFO .* passed for resource", output, re.M))
        assert passed == core, f"Kubernetes {version}: {passed} of {core} passed\n{output}"


def test_kubernetes_validate_rejects_an_unknown_field(
    ops_tools: OpsTools, rendered: dict[str, Path], tmp_path: Path
) -> None:
    """The strict check is not a formality: a misspelt field fails it."""
    bad = tmp_path / "bad.yaml"
    text = rendered["defaults"].read_text()
    bad.write_text(text.replace("terminationGracePeriodSeconds:", "terminationGracePeriod:", 1))
    done = subprocess.run(
        [ops_tools("KUBERNETES_VALIDATE"), "--strict", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0 and "terminationGracePeriod" in done.stdout + done.stderr


def validate_crds(ops_tools: OpsTools, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ops_tools("TOOLS_PYTHON"), str(REPO / "tools/validate_crds.py"), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_operator_kinds_match_their_crds(ops_tools: OpsTools, rendered: dict[str, Path]) -> None:
    done = validate_crds(ops_tools, rendered["monitoring"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": valid") == 2, done.stdout


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        ("for: 5m", "for: 5 minutes", "should match pattern"),
        ("scrapeTimeout:", "scrapeTimeoutSeconds:", "not a field of ServiceMonitor"),
        ("- alert: AgentFailoverMonitorDown", "- alerts: AgentFailoverMonitorDown", "alerts"),
    ],
)
def test_crd_check_rejects_bad_objects(
    ops_tools: OpsTools, rendered: dict[str, Path], tmp_path: Path, old: str, new: str, error: str
) -> None:
    bad = tmp_path / "bad.yaml"
    text = rendered["monitoring"].read_text()
    assert old in text
    bad.write_text(text.replace(old, new, 1))
    done = validate_crds(ops_tools, bad)
    assert done.returncode == 1 and error in done.stdout, done.stdout + done.stderr
