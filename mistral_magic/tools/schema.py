"""JSON Schema for a Python function's parameters, and validation of the model's arguments.

pydantic does the type work (int, float, str, bool, Literal, Enum, lists, dicts, Optional,
defaults, pydantic models, dataclasses); this module adds per-parameter descriptions from the
docstring (Google, NumPy or reST style) and trims the schema to what a tool definition needs:
no ``title`` noise, ``$ref``s inlined, no ``$schema``/``$id`` (they break vLLM's guided
decoding grammars). pydantic is imported only when a tool is defined, never at ``%load_ext``.
"""

from __future__ import annotations

import inspect
import re
import typing
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_DESCRIPTION_CHARS = 1024

_GOOGLE_SECTIONS = {
    "args": "params",
    "arguments": "params",
    "parameters": "params",
    "params": "params",
    "keyword args": "params",
    "keyword arguments": "params",
    "other parameters": "params",
    "returns": "other",
    "return": "other",
    "yields": "other",
    "raises": "other",
    "examples": "other",
    "example": "other",
    "notes": "other",
    "note": "other",
    "see also": "other",
    "references": "other",
    "warnings": "other",
    "warning": "other",
    "attributes": "other",
}
_GOOGLE_HEADER = re.compile(r"^\s*([A-Za-z][A-Za-z ]*):\s*$")
_NUMPY_RULE = re.compile(r"^\s*-{3,}\s*$")
_GOOGLE_PARAM = re.compile(r"^\*{0,2}(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_PARAM = re.compile(r"^\*{0,2}(?P<names>[A-Za-z_][A-Za-z0-9_, ]*?)\s*(?::.*)?$")
_LIST_ITEM = re.compile(r"^(?:[-*•]|\d+[.)])\s")
_REST_PARAM_KINDS = ("param", "parameter", "arg", "argument", "key", "keyword")
_REST_FIELD = re.compile(r"^:(?P<kind>[a-z]+)(?:\s+(?P<words>[^:]+))?:\s*(?P<text>.*)$")


class ToolDefinitionError(ValueError):
    """A function that cannot become a tool (the message says why and how to fix it)."""


@dataclass
class Docstring:
    summary: str = ""
    params: dict[str, str] = field(default_factory=dict)


def parse_docstring(doc: str | None) -> Docstring:
    """The description (text before the first section) and per-parameter descriptions."""
    if not doc:
        return Docstring()
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None  # None = still in the description
    current: list[str] = []  # the parameter(s) the next continuation line belongs to

    def add(text: str) -> None:
        for name in current:
            params[name] = f"{params.get(name, '')} {text}".strip()

    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        indented = line.startswith((" ", "\t"))
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if stripped and not indented and _NUMPY_RULE.match(following):
            is_params = stripped.lower() in ("parameters", "other parameters")
            section, current = ("numpy-params" if is_params else "other"), []
            i += 2
            continue
        header = _GOOGLE_HEADER.match(line)
        if header and not indented and header.group(1).lower() in _GOOGLE_SECTIONS:
            is_params = _GOOGLE_SECTIONS[header.group(1).lower()] == "params"
            section, current = ("google-params" if is_params else "other"), []
            i += 1
            continue
        rest = _REST_FIELD.match(stripped)
        if rest:
            section, current = "rest", []
            words = (rest.group("words") or "").split()
            if rest.group("kind") in _REST_PARAM_KINDS and words:
                current = [words[-1]]
                add(rest.group("text"))
            i += 1
            continue
        if section is None:
            summary.append(line)
        elif stripped and section == "google-params":
            match = _GOOGLE_PARAM.match(stripped)
            if match and _indent(line) <= _param_indent(lines, i):
                current = [match.group("name")]
                add(match.group(2))
            else:
                add(stripped)
        elif stripped and section == "numpy-params":
            if indented:
                add(stripped)
            else:
                match = _NUMPY_PARAM.match(stripped)
                names = match.group("names").split(",") if match else []
                current = [n.strip().lstrip("*") for n in names if n.strip()]
        elif stripped and section == "rest" and indented:
            add(stripped)
        i += 1
    return Docstring("\n".join(summary).strip(), {k: v for k, v in params.items() if v})


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _param_indent(lines: list[str], index: int) -> int:
    """Indent of the first parameter line of the Google section containing ``index``."""
    start = index
    while start > 0 and not _GOOGLE_HEADER.match(lines[start - 1]):
        start -= 1
    for line in lines[start : index + 1]:
        if line.strip():
            return _indent(line)
    return _indent(lines[index])


# ------------------------------------------------------------------------------ signatures


@dataclass
class ArgumentsSpec:
    """How to check and pass the arguments of one function."""

    schema: dict[str, Any]
    model: Any  # a pydantic model class; fields p0, p1, … aliased to the parameter names
    parameters: list[inspect.Parameter]

    def bind(self, arguments: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Validate ``arguments`` (raises ``pydantic.ValidationError``) and return the
        positional and keyword arguments of the call. Parameters the model left out keep the
        function's own defaults."""
        validated = self.model.model_validate(arguments)
        given = validated.model_fields_set
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for index, parameter in enumerate(self.parameters):
            key = f"p{index}"
            value = getattr(validated, key)
            if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
                args.append(value)
            elif key in given:
                kwargs[parameter.name] = value
        return args, kwargs


def arguments_spec(func: Callable[..., Any], tool_name: str) -> ArgumentsSpec:
    from pydantic import ConfigDict, Field, create_model

    signature = inspect.signature(func)
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception as exc:
        raise ToolDefinitionError(
            f"Tool {tool_name!r}: could not read the type hints of {func.__qualname__} ({exc})."
        ) from exc
    docs = parse_docstring(inspect.getdoc(func))
    fields: dict[str, Any] = {}
    parameters: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise ToolDefinitionError(
                f"Tool {tool_name!r}: *{parameter.name} / **{parameter.name} cannot be described "
                "to the model; give the tool named parameters with type hints."
            )
        annotation = hints.get(parameter.name, _guess_type(parameter.default))
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[f"p{len(parameters)}"] = (
            annotation,
            Field(default, alias=parameter.name, description=docs.params.get(parameter.name)),
        )
        parameters.append(parameter)
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = create_model(f"{tool_name}_arguments", __config__=config, **fields)
            raw_schema = model.model_json_schema(by_alias=True)
    except Exception as exc:
        raise ToolDefinitionError(
            f"Tool {tool_name!r}: a parameter type cannot be turned into JSON Schema ({exc}). "
            "Use JSON-like types: int, float, str, bool, Literal, Enum, list, dict, Optional, "
            "pydantic models or dataclasses."
        ) from exc
    return ArgumentsSpec(clean_schema(raw_schema), model, parameters)


def _unwrap(text: str) -> str:
    """Join hard-wrapped lines; keep paragraph breaks."""
    joined: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        starts_item = _LIST_ITEM.match(stripped) is not None
        if joined and joined[-1] and stripped and not starts_item:
            joined[-1] = f"{joined[-1]} {stripped}"
        else:
            joined.append(stripped)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(joined)).strip()


def _guess_type(default: Any) -> Any:
    if default is inspect.Parameter.empty or default is None:
        return Any
    return type(default)


def describe_function(func: Callable[..., Any]) -> str:
    """The tool description: the docstring's text before its sections, clipped."""
    text = _unwrap(parse_docstring(inspect.getdoc(func)).summary)
    if len(text) > MAX_DESCRIPTION_CHARS:
        text = text[: MAX_DESCRIPTION_CHARS - 1].rstrip() + "…"
    return text


# ------------------------------------------------------------------------------ cleaning

_DROPPED_KEYS = ("$schema", "$id")


def clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Inline ``$ref``s (unless recursive), drop ``title``/``$schema``/``$id``."""
    definitions = schema.get("$defs", {})
    recursive = {name for name in definitions if _refers_to(definitions, name, name, set())}
    cleaned = _clean(schema, definitions, recursive, ())
    kept = {name: _clean(definitions[name], definitions, recursive, ()) for name in recursive}
    cleaned.pop("$defs", None)
    if kept:
        cleaned["$defs"] = kept
    cleaned.setdefault("type", "object")
    cleaned.setdefault("properties", {})
    return cleaned


def _ref_name(ref: str) -> str | None:
    prefix = "#/$defs/"
    return ref[len(prefix) :] if ref.startswith(prefix) else None


def _refers_to(definitions: dict[str, Any], start: str, target: str, seen: set[str]) -> bool:
    for ref in _refs(definitions.get(start)):
        name = _ref_name(ref)
        if name == target:
            return True
        if name and name not in seen:
            seen.add(name)
            if _refers_to(definitions, name, target, seen):
                return True
    return False


def _refs(node: Any) -> typing.Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_VALUES = ("items", "additionalProperties", "not", "contains")


def _clean(node: Any, definitions: dict[str, Any], recursive: set[str], stack: tuple) -> Any:
    """Walk schema positions only, so a property *named* ``title`` survives."""
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    name = _ref_name(ref) if isinstance(ref, str) else None
    if name and name in definitions and name not in recursive and name not in stack:
        inlined = _clean(definitions[name], definitions, recursive, (*stack, name))
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return {**inlined, **_clean(extra, definitions, recursive, stack)}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS or (key == "title" and isinstance(value, str)):
            continue
        if key == "$defs":
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {k: _clean(v, definitions, recursive, stack) for k, v in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [_clean(v, definitions, recursive, stack) for v in value]
        elif key in _SCHEMA_VALUES:
            out[key] = _clean(value, definitions, recursive, stack)
        else:
            out[key] = value
    return out
