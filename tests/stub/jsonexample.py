"""A minimal instance of a JSON Schema: default replies in JSON-schema mode and tool arguments."""

from __future__ import annotations

from typing import Any

_SCALARS: dict[str, Any] = {
    "string": "example",
    "integer": 1,
    "number": 1.5,
    "boolean": True,
    "null": None,
}


def example(schema: Any, depth: int = 0) -> Any:
    """A value that satisfies simple schemas (objects, arrays, enums, scalars, anyOf)."""
    if not isinstance(schema, dict) or depth > 8:
        return None
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    if schema.get("enum"):
        return schema["enum"][0]
    if schema.get("examples"):
        return schema["examples"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return example(schema[key][0], depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        return {name: example(sub, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        items = schema.get("items")
        return [example(items, depth + 1)] if isinstance(items, dict) else []
    if kind == "string" and schema.get("format") == "date":
        return "2024-07-24"
    return _SCALARS.get(str(kind), {})
