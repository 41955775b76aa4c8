"""The agent's notebook tools (issue #14): what Mistral may do to the active notebook in the
sidebar's Agent mode. Their names and parameters are a contract (tests script them).

They are defined here, in Python, from typed signatures (the same schema helpers as
``@tool``), and sent by the server; they never run in Python: the server relays each call to
the browser, whose ``agent`` runner (``labextension/src/agent.ts``) acts on the notebook
model. Indices are 0-based positions in the notebook as it is when the call is made.

:func:`agent_result_text` turns what the browser reports for a cell run or a cell's outputs
(notebook outputs, already bounded there) into the text the model reads: bounded text, images
by type and size, an error as its name, value and condensed ANSI-free traceback.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from .core import Tool, Toolbox

#: The browser's runner for these tools (the relay's ``runner`` field).
AGENT_RUNNER = "agent"
#: Calls that change the notebook or run code: the browser asks the user first.
NEEDS_APPROVAL = frozenset({"run_cell", "edit_cell", "delete_cell"})
OUTPUT_TEXT_CHARS = 2000  # per output, in what the model reads
TRACEBACK_CHARS = 3000
MAX_OUTPUTS = 20


def list_cells() -> None:
    """List the notebook's cells: index, type, execution count, first line of the source,
    whether the cell has an error output."""


def get_cell(index: int) -> None:
    """The source, type and execution count of the cell at ``index``.

    :param index: 0-based position of the cell in the notebook as it is now.
    """


def insert_cell(index: int, source: str, cell_type: Literal["code", "markdown"] = "code") -> None:
    """Insert a new cell at ``index`` (the cells from there move down). It is not run:
    call run_cell to run it.

    :param index: 0-based position the new cell takes; the number of cells appends it.
    :param source: the cell's whole source.
    :param cell_type: code or markdown.
    """


def edit_cell(index: int, source: str) -> None:
    """Replace the whole source of the cell at ``index`` (the user approves the change
    first; a rejected edit is reported as rejected).

    :param index: 0-based position of the cell.
    :param source: the cell's new, complete source.
    """


def run_cell(index: int) -> None:
    """Run the code cell at ``index`` in the notebook's kernel and return its outputs
    (the user approves first; a rejected run is reported as rejected). An error comes back
    as its traceback.

    :param index: 0-based position of the cell.
    """


def get_cell_output(index: int) -> None:
    """The outputs of the cell at ``index`` as they are now (text bounded, images described).

    :param index: 0-based position of the cell.
    """


def delete_cell(index: int) -> None:
    """Delete the cell at ``index`` (the user approves first).

    :param index: 0-based position of the cell.
    """


_FUNCTIONS = (list_cells, get_cell, insert_cell, edit_cell, run_cell, get_cell_output, delete_cell)
AGENT_TOOL_NAMES: tuple[str, ...] = tuple(f.__name__ for f in _FUNCTIONS)


def agent_tools() -> list[Tool]:
    """The agent's tools, built from their signatures (never called in Python)."""
    return [Tool.from_function(f) for f in _FUNCTIONS]


def agent_toolbox(kernel_tools: Toolbox | None = None) -> tuple[Toolbox, dict[str, str]]:
    """The Agent mode's tools: the kernel's (the read-only notebook tools and the user's
    ``@tool`` functions) plus the agent's, which win a name clash (``get_cell`` takes an
    index here, not an execution count); and the runner of each agent tool."""
    tools = dict(kernel_tools.tools) if kernel_tools else {}
    runners = {}
    for agent_tool in agent_tools():
        tools.pop(agent_tool.name, None)
        tools[agent_tool.name] = agent_tool
        runners[agent_tool.name] = AGENT_RUNNER
    return Toolbox(tools), runners


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n… [{len(text) - limit:,} characters cut] …\n{text[-half:]}"


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def describe_output(output: dict[str, Any]) -> str:
    """One notebook output as the model reads it: text bounded, an image by type and size,
    an error with its condensed traceback (ANSI stripped)."""
    from ..context.notebook import strip_ansi

    kind = output.get("output_type")
    if kind == "stream":
        text = _clip(_text(output.get("text")), OUTPUT_TEXT_CHARS)
        return f"[{output.get('name', 'stdout')}]\n{text}"
    if kind == "error":
        traceback = strip_ansi("\n".join(str(line) for line in output.get("traceback") or []))
        head = f"{output.get('ename', 'Error')}: {strip_ansi(str(output.get('evalue', '')))}"
        return f"[error] {head}\n{_clip(traceback, TRACEBACK_CHARS)}"
    data = output.get("data") or {}
    parts = []
    for mime, value in data.items():
        if mime.startswith("image/"):
            size = output.get("sizes", {}).get(mime) or len(_text(value))
            parts.append(f"[{mime} image, {size:,} bytes: not shown]")
        elif mime == "text/plain":
            parts.append(_clip(_text(value), OUTPUT_TEXT_CHARS))
    if not parts and data:
        parts.append(f"[{', '.join(sorted(data))}: not shown]")
    return "\n".join(parts)


def agent_result_text(name: str, result: str) -> str:
    """The text the model reads for an agent call. ``run_cell`` and ``get_cell_output``
    come back from the browser as JSON (``{"index", "execution_count", "status",
    "outputs"}``); anything else, and anything not in that shape, is passed on as it is."""
    if name not in ("run_cell", "get_cell_output"):
        return result
    try:
        report = json.loads(result)
    except ValueError:
        return result
    if not isinstance(report, dict) or not isinstance(report.get("outputs"), list):
        return result
    outputs = [o for o in report["outputs"] if isinstance(o, dict)]
    count = report.get("execution_count")
    where = f"Cell {report.get('index')}" + (f" (In[{count}])" if count is not None else "")
    status = report.get("status", "ok")
    lead = {
        "ok": f"{where} ran." if name == "run_cell" else f"{where} outputs:",
        "error": f"{where} raised an error.",
    }.get(status, f"{where}: {status}.")
    shown = [describe_output(o) for o in outputs[:MAX_OUTPUTS]]
    if len(outputs) > MAX_OUTPUTS:
        shown.append(f"[{len(outputs) - MAX_OUTPUTS} more outputs not shown]")
    body = "\n".join(s for s in shown if s) or "(no output)"
    return f"{lead}\n{body}"
