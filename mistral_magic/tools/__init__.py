"""Tools the model may call: ``@tool`` and the registry (:mod:`.core`), the JSON Schema of a
function's parameters (:mod:`.schema`), and the built-in read-only notebook tools
(:mod:`.notebook`). ``from mistral_magic import tool`` is the public way in."""

from __future__ import annotations

from .core import (
    ALL,
    NONE,
    NOTEBOOK,
    Tool,
    ToolArgumentsError,
    Toolbox,
    ToolRegistry,
    ToolSelectionError,
    check_tool_choice,
    registry,
    result_text,
    select,
    split_names,
    tool,
)

__all__ = [
    "ALL",
    "NONE",
    "NOTEBOOK",
    "Tool",
    "ToolArgumentsError",
    "ToolRegistry",
    "ToolSelectionError",
    "Toolbox",
    "check_tool_choice",
    "registry",
    "result_text",
    "select",
    "split_names",
    "tool",
]
