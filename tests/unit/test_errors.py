"""The error tree: drawn completely, raised instead of bare built-ins, named truly in docstrings."""

from __future__ import annotations

import ast
import builtins
import inspect
import re
from pathlib import Path

import pytest

import agent_failover
import agent_failover.errors as errors
from agent_failover.config import KafkaConfig, Topics
from agent_failover.errors import (
    AgentFailoverError,
    BrokerError,
    EmbeddedBrokerError,
    InternalError,
    KafkaContainerUnavailable,
    LifecycleError,
)
from agent_failover.streams.liveness import LivenessTracker

ROOT = Path(agent_failover.__file__).parent.parent
ERRORS = {
    name: cls
    for name, cls in vars(errors).items()
    if inspect.isclass(cls) and issubclass(cls, BaseException)
}
# Built-in errors a caller could only catch as such: the library raises its own subclasses.
BARE = {"Exception", "RuntimeError", "ValueError", "KeyError", "IndexError", "OSError"}
# Raise sites no public call reaches with bad input, each with the reason.
ALLOWED_BARE = {
    # Its callers pass partition counts that Topics already checked (ConfigError).
    ("agent_failover/partitioner.py", "ValueError"),
}


def test_every_error_derives_from_the_root_and_is_in_the_drawn_tree() -> None:
    drawn = set(re.findall(r"[├└]── (\w+)", errors.__doc__ or ""))
    assert drawn == set(ERRORS) - {"AgentFailoverError"}
    assert all(issubclass(cls, AgentFailoverError) for cls in ERRORS.values())
    for name, cls in ERRORS.items():
        assert cls.__doc__, name


def test_internal_error_carries_its_cause_and_is_not_retryable() -> None:
    bug = KeyError("slot")
    error = InternalError("thread failed", cause=bug)
    assert error.cause is bug and error.__cause__ is bug
    assert not error.retryable and isinstance(error, RuntimeError)
    assert not isinstance(error, BrokerError)


def test_a_missing_kafka_container_is_a_broker_error_but_not_the_embedded_broker() -> None:
    error = KafkaContainerUnavailable("no Docker engine reachable")
    assert isinstance(error, BrokerError) and not isinstance(error, EmbeddedBrokerError)
    assert error.reason == "no Docker engine reachable" and not error.retryable


def bare_raises(tree: ast.Module) -> set[str]:
    """Names of built-in errors raised by name (``raise ValueError(...)``) in ``tree``."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(target, ast.Name) and target.id in BARE:
                found.add(target.id)
    return found


def test_the_library_raises_no_bare_builtin_error() -> None:
    # agent_failover/dev/ is the demo's tooling (supervisor, observer, ledger), not the library;
    # streams/ is the monitor, not a public API.
    library = {
        where: tree
        for where, tree in TREES.items()
        if where.startswith("agent_failover/") and not where.startswith("agent_failover/dev/")
    }
    assert len(library) > 10
    found = {(where, name) for where, tree in library.items() for name in bare_raises(tree)}
    assert found == ALLOWED_BARE  # an allowed site that went away is to be struck off too


SOURCES = [*(ROOT / "agent_failover").rglob("*.py"), *(ROOT / "streams").rglob("*.py")]
TREES = {path.relative_to(ROOT).as_posix(): ast.parse(path.read_text()) for path in SOURCES}
DOCUMENTED = ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef


def docstring_references(roles: str) -> dict[str, str]:
    """Targets of ``:role:`target``` in every docstring (``roles``: e.g. ``class|exc``) -> file."""
    found: dict[str, str] = {}
    for where, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, DOCUMENTED):
                doc = ast.get_docstring(node) or ""
                for ref in re.findall(rf":(?:{roles}):`~?([\w.]+)`", doc):
                    found.setdefault(ref, where)
    return found


def defined(kind: type[ast.ClassDef] | type[ast.FunctionDef]) -> set[str]:
    nodes = (node for tree in TREES.values() for node in ast.walk(tree))
    return {node.name for node in nodes if isinstance(node, kind)}


def test_every_class_and_error_a_docstring_names_exists() -> None:
    known = defined(ast.ClassDef) | {n for n, v in vars(builtins).items() if inspect.isclass(v)}
    known |= {"KafkaException", "KafkaError"}  # confluent-kafka's, named where they are wrapped
    missing = {
        ref: where
        for ref, where in docstring_references("class|exc").items()
        if ref.rsplit(".", 1)[-1] not in known and not ref.startswith("aiokafka.")
    }
    assert missing == {}


def test_every_function_and_module_a_docstring_names_exists() -> None:
    functions = defined(ast.FunctionDef)
    missing = {
        ref: where
        for ref, where in docstring_references("func").items()
        if ref.rsplit(".", 1)[-1] not in functions
    }
    for ref, where in docstring_references("mod").items():
        module = ROOT.joinpath(*ref.split("."))
        if not (module.with_suffix(".py").exists() or (module / "__init__.py").exists()):
            missing[ref] = where
    assert missing == {}


def test_liveness_tracker_started_twice_is_a_lifecycle_error() -> None:
    tracker = LivenessTracker(KafkaConfig("127.0.0.1:1"), Topics())  # assigned nothing: no I/O
    tracker.start()
    try:
        with pytest.raises(LifecycleError, match="already started"):
            tracker.start()
    finally:
        tracker.stop()
