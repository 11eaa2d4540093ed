"""Generate the chart's values table in docs/operations.md from values.yaml's ``# --`` comments.

Each documented key of ``helm/agent-failover/values.yaml`` has a comment starting with ``# --``
just above it (continued by further ``#`` lines); the table lists its dotted path, its default
and that text, between the ``<!-- values-table:begin -->`` and ``<!-- values-table:end -->``
markers of docs/operations.md::

    python tools/values_table.py --write   # rewrite the table
    python tools/values_table.py --check   # exit 1 if it is stale or a key is undocumented
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
VALUES = ROOT / "helm/agent-failover/values.yaml"
DOC = ROOT / "docs/operations.md"
BEGIN = "<!-- values-table:begin -->"
END = "<!-- values-table:end -->"
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z][A-Za-z0-9_]*):(?P<value>.*)$")


def rows(text: str) -> list[tuple[str, str, str]]:
    """(dotted key, default as JSON, description) for every documented key, in file order."""
    values = yaml.safe_load(text)
    found: list[tuple[str, str, str]] = []
    path: list[tuple[int, str]] = []
    doc: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            doc = [stripped[4:].strip()]
            continue
        if stripped.startswith("#"):
            if doc:
                doc.append(stripped[1:].strip())
            continue
        match = _KEY.match(line)
        if not match:
            continue
        indent = len(match["indent"])
        while path and path[-1][0] >= indent:
            path.pop()
        path.append((indent, match["key"]))
        if doc:
            keys = [k for _, k in path]
            default: Any = values
            for key in keys:
                default = default[key]
            found.append((".".join(keys), json.dumps(default), " ".join(doc)))
        doc = []
    return found


def undocumented(text: str) -> list[str]:
    """Leaf keys (a value on the same line) without a ``# --`` comment."""
    documented = {key for key, _, _ in rows(text)}
    missing: list[str] = []
    path: list[tuple[int, str]] = []
    for line in text.splitlines():
        match = _KEY.match(line)
        if not match:
            continue
        indent = len(match["indent"])
        while path and path[-1][0] >= indent:
            path.pop()
        path.append((indent, match["key"]))
        key = ".".join(k for _, k in path)
        under_documented = any(key.startswith(d + ".") for d in documented)
        if match["value"].strip() and key not in documented and not under_documented:
            missing.append(key)
    return missing


def table(text: str) -> str:
    """The markdown table."""
    out = ["| key | default | meaning |", "|---|---|---|"]
    for key, value, doc in rows(text):
        shown, meaning = value.replace("|", "\\|"), doc.replace("|", "\\|")
        out.append(f"| `{key}` | `{shown}` | {meaning} |")
    return "\n".join(out)


def updated(doc: str, text: str) -> str:
    """``doc`` with the table between the markers replaced."""
    head, sep, rest = doc.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise SystemExit(f"{DOC}: markers {BEGIN} / {END} not found")
    return f"{head}{BEGIN}\n{table(text)}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite the table")
    mode.add_argument("--check", action="store_true", help="exit 1 if stale or undocumented")
    args = parser.parse_args(argv)
    text = VALUES.read_text()
    missing = undocumented(text)
    if missing:
        print(f"values.yaml keys without a '# --' comment: {', '.join(missing)}", file=sys.stderr)
        return 1
    doc = DOC.read_text()
    new = updated(doc, text)
    if args.check:
        if new != doc:
            print(f"{DOC}: the values table is stale: run tools/values_table.py --write")
            return 1
        return 0
    DOC.write_text(new)
    print(f"wrote the values table of {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
