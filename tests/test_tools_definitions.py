"""@tool: JSON Schema from signatures and docstrings, the name rule, results, selection."""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Iterator
from typing import Any, Literal, Optional

import pytest
from pydantic import BaseModel

from mistral_magic.engine.tool_loop import ToolEvent, call_signature, wire_id
from mistral_magic.faces.render import tool_call_line, tool_call_markdown
from mistral_magic.tools.core import (
    Tool,
    ToolArgumentsError,
    ToolRegistry,
    ToolSelectionError,
    check_tool_choice,
    registry,
    result_text,
    select,
    tool,
)
from mistral_magic.tools.schema import ToolDefinitionError, parse_docstring


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Point:
    x: int
    y: float = 0.0


class Customer(BaseModel):
    id: int
    title: str  # a property *named* title must survive the title stripping
    tags: list[str] = []


def every_type(
    count: int,
    ratio: float,
    label: str,
    flag: bool,
    mode: Literal["fast", "slow"],
    color: Color,
    numbers: list[int],
    weights: dict[str, float],
    point: Point,
    customer: Customer,
    note: Optional[str] = None,  # noqa: UP045 (the typing spelling must work too)
    limit: int | None = 10,
) -> dict:
    """Take one of everything.

    Args:
        count: how many.
        ratio (float): a share,
            between 0 and 1.
        customer: the CRM record.
    """
    return {}


@pytest.fixture(autouse=True)
def clean_registry():
    before = {t.name: t for t in registry.all()}
    yield
    registry.clear()
    for kept in before.values():
        registry.add(kept)


def test_schema_covers_every_supported_type_without_refs_or_titles():
    spec = Tool.from_function(every_type)
    schema = spec.parameters
    text = json.dumps(schema)
    assert "$ref" not in text and "$defs" not in text and '"title": "' not in text
    props = schema["properties"]
    assert schema["type"] == "object"
    assert props["count"] == {"type": "integer", "description": "how many."}
    assert props["ratio"] == {"type": "number", "description": "a share, between 0 and 1."}
    assert props["label"] == {"type": "string"}
    assert props["flag"] == {"type": "boolean"}
    assert props["mode"] == {"type": "string", "enum": ["fast", "slow"]}
    assert props["color"]["enum"] == ["red", "blue"]
    assert props["numbers"] == {"type": "array", "items": {"type": "integer"}}
    assert props["weights"] == {"type": "object", "additionalProperties": {"type": "number"}}
    assert props["point"]["properties"]["x"] == {"type": "integer"}
    assert props["point"]["required"] == ["x"]
    customer = props["customer"]
    assert customer["description"] == "the CRM record."
    assert set(customer["properties"]) == {"id", "title", "tags"}
    assert customer["properties"]["title"] == {"type": "string"}
    assert props["note"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
    assert props["limit"]["default"] == 10
    assert schema["required"] == [
        "count", "ratio", "label", "flag", "mode", "color", "numbers", "weights", "point",
        "customer",
    ]  # fmt: skip
    assert spec.description == "Take one of everything."


def test_arguments_are_validated_and_converted_before_the_call():
    seen = {}

    def record(**kwargs):
        seen.update(kwargs)
        return "ok"

    spec = Tool.from_function(every_type)
    spec.function = record
    arguments = {
        "count": "3",
        "ratio": 0.5,
        "label": "x",
        "flag": True,
        "mode": "fast",
        "color": "blue",
        "numbers": [1, 2],
        "weights": {"a": 1},
        "point": {"x": 1},
        "customer": {"id": 7, "title": "Dr"},
    }
    assert spec.call(arguments) == "ok"
    assert seen["count"] == 3 and seen["color"] is Color.BLUE
    assert seen["point"] == Point(1, 0.0)
    assert isinstance(seen["customer"], Customer) and seen["customer"].title == "Dr"
    assert "note" not in seen and "limit" not in seen  # the function's own defaults apply
    with pytest.raises(ToolArgumentsError, match="count"):
        spec.call({**arguments, "count": "many"})
    with pytest.raises(ToolArgumentsError, match="Extra inputs"):
        spec.call({**arguments, "surprise": 1})


def test_docstring_styles_give_parameter_descriptions():
    google = parse_docstring(
        """Summary line.

        Args:
            a (int): first
                and more.
            b: second

        Returns:
            nothing: at all
        """
    )
    numpy = parse_docstring(
        """Summary line.

        Parameters
        ----------
        a : int
            first
        b, c : str
            shared

        Returns
        -------
        int
        """
    )
    rest = parse_docstring(
        """Summary line.

        :param int a: first
        :param b: second
            continued
        :returns: something
        """
    )
    assert google.summary == numpy.summary == rest.summary == "Summary line."
    assert google.params == {"a": "first and more.", "b": "second"}
    assert numpy.params == {"a": "first", "b": "shared", "c": "shared"}
    assert rest.params == {"a": "first", "b": "second continued"}


def test_decorator_forms_register_and_return_the_function():
    @tool
    def plain(x: int) -> int:
        """Double."""
        return 2 * x

    @tool(name="renamed-tool", description="Custom.", confirm=True)
    def other(x: int) -> int:
        return x

    assert plain(2) == 4 and other(3) == 3  # still callable
    assert registry.get("plain").description == "Double."
    renamed = registry.get("renamed-tool")
    assert renamed.confirm and renamed.description == "Custom."

    @tool
    def plain(y: str) -> str:  # re-running a cell replaces the tool
        return y

    assert list(registry.get("plain").parameters["properties"]) == ["y"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "has space"}, "not allowed"),
        ({"name": "x" * 65}, "1 to 64 characters"),
        ({"name": "describe_variable"}, "built-in notebook tool"),
        ({"name": "all"}, "keyword of --tools"),
    ],
)
def test_bad_names_are_refused_at_registration(kwargs, message):
    with pytest.raises(ToolDefinitionError, match=message):
        tool(**kwargs)(lambda: None)


def test_lambdas_and_star_args_are_refused_with_a_fix():
    with pytest.raises(ToolDefinitionError, match=r'@tool\(name="\.\.\."\)'):
        tool(lambda x: x)

    def star(*values: int) -> int:
        return 0

    with pytest.raises(ToolDefinitionError, match="named parameters"):
        tool(star)


def test_async_tools_run_to_completion():
    async def later(x: int) -> int:
        return x + 1

    assert Tool.from_function(later).call({"x": 1}) == 2


def test_results_are_text_redacted_and_bounded_even_for_huge_values():
    from mistral_magic.context.redact import Redactor

    assert result_text({"a": 1, "b": [1, 2]}, max_chars=100) == '{"a": 1, "b": [1, 2]}'
    assert result_text(Point(1), max_chars=100) == '{"x": 1, "y": 0.0}'
    assert result_text(Customer(id=1, title="t"), max_chars=100).startswith('{"id": 1')
    assert result_text(None, max_chars=100) == "null"
    assert result_text("", max_chars=100) == "(no output)"
    secret = "sk-proj-THISMUSTNEVERLEAVE1234567890"
    assert secret not in result_text(f"key={secret}", max_chars=200, redactor=Redactor())
    huge = _CountingList(range(2_000_000))
    text = result_text(huge, max_chars=500)
    # bounded work, not a stopwatch: only the items that can show are ever read
    assert huge.read < 1_000
    assert len(text) <= 500 and "cut" in text


class _CountingList(list):
    """A list that counts the items read from it."""

    read = 0

    def __iter__(self) -> Iterator[Any]:
        for item in super().__iter__():
            self.read += 1
            yield item


def test_selection_keywords_unknown_names_and_tool_choice():
    builtin = Tool.from_function(lambda: "", name="list_variables", builtin=True)
    mine = ToolRegistry()
    mine.add(Tool.from_function(lambda: "", name="lookup"))
    assert select("notebook", [builtin], mine).names() == ["list_variables"]
    assert select("all", [builtin], mine).names() == ["list_variables", "lookup"]
    assert select("lookup, list_variables", [builtin], mine).names() == [
        "lookup",
        "list_variables",
    ]
    assert not select("none", [builtin], mine)
    with pytest.raises(ToolSelectionError, match=r"Unknown tool.*nope.*Available: list_vari"):
        select("nope", [builtin], mine)
    box = select("lookup", [builtin], mine)
    assert check_tool_choice("any", box) == "any"
    assert check_tool_choice("lookup", box) == "lookup"
    with pytest.raises(ToolSelectionError, match="not one of the tools offered"):
        check_tool_choice("list_variables", box)


def test_wire_ids_are_kept_when_valid_and_remapped_deterministically():
    assert wire_id("D681PevKs", 1, 0) == "D681PevKs"
    remapped = wire_id("call_abc123", 1, 0)
    assert len(remapped) == 9 and remapped.isalnum() and remapped.isascii()
    assert wire_id("call_abc123", 1, 0) == remapped
    assert wire_id("", 1, 0) != wire_id("", 1, 1)  # missing ids stay distinct


def test_tool_call_lines_for_notebook_and_terminal():
    args = {"name": "df", "n": 5}
    assert call_signature("dataframe_head", args) == 'dataframe_head(name="df", n=5)'
    running = ToolEvent("abcdefghi", "dataframe_head", args, "running")
    assert tool_call_markdown(running) == '🔧 <code>dataframe\\_head(name="df", n=5)</code> · …'
    done = dataclasses.replace(running, status="ok", result="a\n```\nb", seconds=0.25)
    markdown = tool_call_markdown(done)
    assert markdown.startswith("<details><summary>🔧 <code>dataframe_head(")
    assert "````text\na\n```\nb\n````" in markdown  # a longer fence than the result's
    assert tool_call_line(done) == '🔧 dataframe_head(name="df", n=5) → 3 lines, 0.25 s'
    declined = dataclasses.replace(running, status="declined", result="The user declined")
    assert tool_call_line(declined).endswith("→ declined")
