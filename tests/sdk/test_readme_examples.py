"""The README's handler and its "Testing your agent" examples run as written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def python_block(after: str) -> str:
    """The first python code block of the README after the heading ``after``."""
    text = (ROOT / "README.md").read_text().split(after, 1)[1]
    return text.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_testing_examples_run_against_the_readme_handler() -> None:
    usage = python_block("## Using the SDK")
    handler = usage[
        usage.index("def summarise") : usage.index("\n\n", usage.index("def summarise"))
    ]
    namespace: dict[str, Any] = {
        # The model call stands in for the user's own.
        "call_the_model": lambda payload, step: f"note {step}",
        "save_note": lambda task_id, step, note: None,
    }
    exec("from agent_failover import TaskContext\n" + handler, namespace)
    exec(python_block("## Testing your agent"), namespace)
    tests = [fn for name, fn in namespace.items() if name.startswith("test_")]
    assert len(tests) == 3
    for test in tests:
        test()
