"""The Dockerfile passes hadolint; the generated files in the repository are current; the tools'
Python modules pass mypy --strict."""

from __future__ import annotations

import subprocess
import sys

from tests.ops.conftest import REPO, OpsTools


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=300, check=False, cwd=REPO)


def test_dockerfile_passes_hadolint(ops_tools: OpsTools) -> None:
    done = run(ops_tools("HADOLINT"), "Dockerfile")
    assert done.returncode == 0, done.stdout + done.stderr


def test_image_is_the_monitor_without_the_broker() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert '"agent-failover[monitor]"' in text and "[broker]" not in text
    assert "USER 10001" in text
    assert 'ENTRYPOINT ["agent-failover"]' in text and 'CMD ["monitor"]' in text


def test_dashboard_json_is_regenerated_unchanged(ops_tools: OpsTools) -> None:
    done = run(ops_tools("TOOLS_PYTHON"), "tools/dashboard.py", "--check")
    assert done.returncode == 0, done.stdout + done.stderr


def test_values_table_is_current() -> None:
    done = run(sys.executable, "tools/values_table.py", "--check")
    assert done.returncode == 0, done.stdout + done.stderr


def test_tools_are_typed(ops_tools: OpsTools) -> None:
    mypy = [sys.executable, "-m", "mypy", "--strict", "--no-incremental"]
    done = run(*mypy, "--python-executable", ops_tools("TOOLS_PYTHON"), "tools")
    assert done.returncode == 0, done.stdout + done.stderr
