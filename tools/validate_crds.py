"""Validate rendered ServiceMonitor and PrometheusRule objects against the operator's CRD schemas.

kubernetes-validate ships the core API schemas only. The prometheus-operator CRD schemas come
here from ``cloudcoil-models-prometheus-operator`` (models generated from the operator's CRDs:
types, required fields, enums and patterns such as the duration format of ``for``). A field the
CRD does not define is an error too (the API server would silently prune it): the object must
survive a round trip through the model unchanged.

Run with the tools venv of ``tools/install-ops-tools.sh``::

    $TOOLS_PYTHON tools/validate_crds.py manifests.yaml [...]

Prints one line per checked object; exit 1 if any is invalid. Other kinds are ignored.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pydantic
import yaml
from cloudcoil.models.prometheus_operator import v1

MODELS: dict[str, type[pydantic.BaseModel]] = {
    "ServiceMonitor": v1.ServiceMonitor,
    "PrometheusRule": v1.PrometheusRule,
}


def _unknown(given: Any, kept: Any, path: str) -> list[str]:
    """Paths present in ``given`` but dropped by the model (fields the CRD does not define)."""
    if isinstance(given, dict) and isinstance(kept, dict):
        found = []
        for key, value in given.items():
            if key not in kept:
                found.append(f"{path}.{key}")
            else:
                found.extend(_unknown(value, kept[key], f"{path}.{key}"))
        return found
    if isinstance(given, list) and isinstance(kept, list):
        return [e for a, b in zip(given, kept, strict=False) for e in _unknown(a, b, path + "[]")]
    return []


def check(doc: dict[str, Any]) -> list[str]:
    """Errors of one object (empty: valid)."""
    model = MODELS[doc["kind"]]
    try:
        parsed = model.model_validate(doc)
    except pydantic.ValidationError as exc:
        return [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    kept = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    return [f"{p}: not a field of {doc['kind']}" for p in _unknown(doc, kept, "")]


def main(argv: list[str]) -> int:
    failed = False
    for name in argv:
        for doc in yaml.safe_load_all(Path(name).read_text()):
            if not isinstance(doc, dict) or doc.get("kind") not in MODELS:
                continue
            errors = check(doc)
            label = f"{name}: {doc['kind']} {doc.get('metadata', {}).get('name')}"
            print(f"{label}: {'INVALID' if errors else 'valid'}")
            for error in errors:
                print(f"  {error}")
            failed = failed or bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
