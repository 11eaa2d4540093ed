"""Generate the JSON Schemas of the wire records (``schemas/*.schema.json``) from the models.

The files are committed so that agents written in other languages can read them; they are never
edited by hand. ``make schemas`` rewrites them; ``--check`` only compares, for tests and CI.

msgspec writes the types, ranges, enums, defaults and descriptions of each dataclass; this
module shapes its output into one self-contained draft 2020-12 file per top-level record
(nested records under ``$defs`` by their record type, enums inline), makes ``schema_version``
required at the top level (:func:`~agent_failover.models.base.check_version`) and writes each
record's rules (:class:`~agent_failover.models.Needs`, :class:`~agent_failover.models.base.Pins`)
as ``if``/``then`` clauses.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec

from agent_failover.models import RECORD_TYPES, Record
from agent_failover.models.base import VERSION_FIELD, Pins, Rule

DRAFT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "https://agent-failover.dev/schemas/"
#: The committed files, at the repository root (next to this package when installed editable).
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "schemas"


def _record_classes(root: type[Record] = Record) -> Iterator[type[Record]]:
    for sub in root.__subclasses__():
        yield sub
        yield from _record_classes(sub)


def _summary(cls: type) -> str:
    """A class docstring's first paragraph, on one line."""
    first = inspect.cleandoc(cls.__doc__ or "").split("\n\n", 1)[0]
    return " ".join(first.split())


def _not_null(fields: Sequence[str]) -> dict[str, Any]:
    return {
        "required": list(fields),
        "properties": {f: {"not": {"type": "null"}} for f in fields},
    }


def _rule(rule: Rule) -> dict[str, Any]:
    if rule.values is None:
        condition = _not_null([rule.when])
    else:
        values = [v if isinstance(v, int) else str(v) for v in rule.values]
        condition = {"properties": {rule.when: {"enum": values}}, "required": [rule.when]}
    if isinstance(rule, Pins):
        value = rule.value if isinstance(rule.value, int) else str(rule.value)
        then = {"properties": {rule.field: {"const": value}}, "required": [rule.field]}
        return {"if": condition, "then": then}
    return {"if": condition, "then": _not_null(rule.fields)}


class _Shaper:
    """Rewrites msgspec's components: records renamed to their record type, enums inlined."""

    def __init__(self, components: dict[str, Any]) -> None:
        self.components = components
        self.records = {c.__name__: c for c in _record_classes()}

    def ref_name(self, ref: str) -> str:
        return ref.rsplit("/", 1)[-1]

    def walk(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.walk(n) for n in node]
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        ref = node.get("$ref")
        if ref is not None and self.ref_name(ref) not in self.records:
            # An enum: inline it, as a string with its values.
            target = self.components[self.ref_name(ref)]
            out.update({"type": "string", "enum": target["enum"]})
            if "description" in target and "description" not in node:
                out["description"] = target["description"]
        branches = node.get("anyOf")
        if isinstance(branches, list) and "description" not in node:
            # `X | None` with a description on X: say it on the field, where readers look.
            described = [b for b in branches if isinstance(b, dict) and "description" in b]
            if len(described) == 1:
                out["description"] = described[0]["description"]
                branches = [{k: v for k, v in b.items() if k != "description"} for b in branches]
                node = {**node, "anyOf": branches}
        for key, value in node.items():
            if key == "$ref":
                name = self.ref_name(value)
                if name in self.records:
                    out["$ref"] = f"#/$defs/{self.records[name].RECORD_TYPE}"
            else:
                out[key] = self.walk(value)
        return out

    def record(self, name: str) -> dict[str, Any]:
        cls = self.records[name]
        body = self.walk(self.components[name])
        body.pop("title", None)
        shaped: dict[str, Any] = {"title": cls.__name__, "description": _summary(cls)}
        shaped.update({k: v for k, v in body.items() if k != "description"})
        if cls.RULES:
            shaped["allOf"] = [_rule(r) for r in cls.RULES]
        return shaped


def schema_of(cls: type[Record]) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of top-level record ``cls``."""
    (_,), components = msgspec.json.schema_components([cls], ref_template="#/$defs/{name}")
    shaper = _Shaper(components)
    top = shaper.record(cls.__name__)
    required = top.setdefault("required", [])
    if VERSION_FIELD not in required:
        required.append(VERSION_FIELD)
    defs = {
        shaper.records[name].RECORD_TYPE: shaper.record(name)
        for name in components
        if name in shaper.records and name != cls.__name__
    }
    schema = {"$schema": DRAFT, "$id": f"{ID_BASE}{cls.RECORD_TYPE}.schema.json", **top}
    if defs:
        schema["$defs"] = defs
    return schema


def render(cls: type[Record]) -> str:
    """The file text of ``cls``'s schema: two-space indented JSON and a final newline."""
    return json.dumps(schema_of(cls), indent=2, ensure_ascii=False) + "\n"


def expected_files() -> dict[str, str]:
    """File name -> text, for every top-level record type."""
    return {f"{rt}.schema.json": render(cls) for rt, cls in sorted(RECORD_TYPES.items())}


def stale_files(directory: Path) -> list[str]:
    """Names of the files in ``directory`` that differ from the generator's, are missing or
    are left over from a record type that no longer exists."""
    expected = expected_files()
    present = {p.name for p in directory.glob("*.schema.json")}
    stale = [
        name
        for name, text in expected.items()
        if name not in present or (directory / name).read_text(encoding="utf-8") != text
    ]
    return sorted(stale + sorted(present - set(expected)))


def write(directory: Path) -> list[str]:
    """Write every schema file to ``directory`` (removing left-over ones); the names changed."""
    changed = stale_files(directory)
    expected = expected_files()
    directory.mkdir(parents=True, exist_ok=True)
    for name in changed:
        path = directory / name
        if name in expected:
            path.write_text(expected[name], encoding="utf-8")
        else:
            path.unlink()
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the schema files, or with ``--check`` report the stale ones."""
    parser = argparse.ArgumentParser(
        prog="python -m agent_failover.models.schemagen",
        description="Generate schemas/*.schema.json from the record classes.",
    )
    parser.add_argument(
        "directory",
        nargs="?",
        type=Path,
        default=DEFAULT_DIR,
        help=f"where the schema files live (default: {DEFAULT_DIR})",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 listing the files that differ from the generated ones",
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.directory)
        for name in stale:
            print(f"stale: {args.directory / name}", file=sys.stderr)
        return 1 if stale else 0
    for name in write(args.directory):
        print(f"wrote {args.directory / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
