"""Structured replies: plain text, any JSON object (``json=True``), or JSON matching a
schema (``json_schema=``: a pydantic model, a dataclass, or a JSON Schema dict).

mistral-large-2407 predates ``response_format: json_schema`` (added to the API in 2025), so
both JSON modes send ``{"type": "json_object"}`` and put the instruction, with the schema, at
the end of the prompt. Replies are parsed and validated here: a pydantic model or dataclass
gives instances, a JSON Schema dict gives validated dicts (checked with ``jsonschema``).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

JSON_OBJECT = {"type": "json_object"}
_FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*\n(.*?)\n?```\s*$", re.DOTALL)


class InvalidReply(ValueError):
    """A reply that is not the JSON asked for; the message says what is wrong."""


@dataclass
class OutputSpec:
    """What a reply should be, and how to turn it into a value."""

    mode: str = "text"  # "text" | "json" | "schema"
    schema: dict[str, Any] | None = None
    target: Any = None  # the pydantic model / dataclass / other type, or None for a dict schema

    @property
    def response_format(self) -> dict[str, str] | None:
        return dict(JSON_OBJECT) if self.mode != "text" else None

    @property
    def instruction(self) -> str:
        if self.mode == "json":
            return "Answer with one JSON object and nothing else."
        if self.mode == "schema":
            schema = json.dumps(self.schema, ensure_ascii=False)
            return (
                "Answer with one JSON object and nothing else. It must match this JSON "
                f"Schema:\n{schema}"
            )
        return ""

    def prompt(self, text: str) -> str:
        """The user prompt with the JSON instruction appended (unchanged for text)."""
        return f"{text}\n\n{self.instruction}" if self.instruction else text

    def parse(self, reply: str) -> Any:
        """The value of a reply, or :class:`InvalidReply`."""
        if self.mode == "text":
            return reply
        value = parse_json_object(reply)
        if self.mode == "json":
            return value
        if self.target is not None:
            return _validate_with_pydantic(self.target, value)
        return _validate_with_jsonschema(self.schema or {}, value)

    def correction(self, problem: str) -> str:
        """The follow-up message asking the model to fix its reply."""
        return (
            f"That reply cannot be used: {problem} Answer again with only the corrected "
            "JSON object."
        )


def output_spec(json_mode: bool, json_schema: Any) -> OutputSpec:
    if json_schema is None:
        return OutputSpec("json") if json_mode else OutputSpec()
    if isinstance(json_schema, dict):
        _check_schema(json_schema)
        return OutputSpec("schema", json_schema, None)
    if isinstance(json_schema, type) or dataclasses.is_dataclass(json_schema):
        try:
            schema = _adapter(json_schema).json_schema()
        except Exception as exc:  # pydantic raises several kinds for unsupported types
            raise TypeError(
                f"json_schema={json_schema!r} cannot be turned into a JSON Schema ({exc}). "
                "Pass a pydantic model, a dataclass, or a JSON Schema dict."
            ) from None
        return OutputSpec("schema", schema, json_schema)
    raise TypeError(
        f"json_schema must be a pydantic model, a dataclass or a JSON Schema dict, not "
        f"{type(json_schema).__name__}."
    )


def _check_schema(schema: dict[str, Any]) -> None:
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"json_schema is not a valid JSON Schema: {exc.message}.") from None


def parse_json_object(reply: str) -> Any:
    """The JSON in a reply, tolerating a Markdown code fence or text around one object."""
    text = reply.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        return json.loads(text)
    except ValueError as exc:
        start, end = text.find("{"), text.rfind("}")
        if 0 <= start < end:
            try:
                return json.loads(text[start : end + 1])
            except ValueError:
                pass
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise InvalidReply(f"it is not valid JSON ({exc.args[0]}; reply: {shown!r}).") from None


@lru_cache(maxsize=32)
def _adapter(target: Any) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(target)


def _validate_with_pydantic(target: Any, value: Any) -> Any:
    from pydantic import ValidationError

    try:
        return _adapter(target).validate_python(value)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in exc.errors()[:5]
        ]
        raise InvalidReply(f"it does not match the schema ({'; '.join(problems)}).") from None


def _validate_with_jsonschema(schema: dict[str, Any], value: Any) -> Any:
    from jsonschema.validators import validator_for

    validator = validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        problems = [
            f"{'.'.join(str(p) for p in e.absolute_path) or '(top level)'}: {e.message}"
            for e in errors[:5]
        ]
        raise InvalidReply(f"it does not match the schema ({'; '.join(problems)}).")
    return value
