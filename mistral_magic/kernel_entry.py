"""The kernel side of the sidebar's tools: what the JupyterLab extension runs, as a silent
execution in the notebook's kernel (no history, no execution count, nothing in the notebook),
to learn which tools the model may call there and to run one of them.

The extension executes :data:`SNIPPET` with ``REQUEST`` replaced by base64 of one JSON
request (base64: no quoting of the model's arguments into Python source), and reads the one
stdout line that starts with :data:`MARKER`, followed by JSON:

* ``{"op": "definitions"}`` -> ``{"version": 1, "tools": [wire specs], "not_offered": [names]}``
* ``{"op": "run", "name", "arguments" (object or JSON text), "max_chars"}`` ->
  ``{"version": 1, "status": "ok" | "error" | "declined", "result": text, "seconds"}``
* ``{"op": "inline_usage", "usage": {requests, prompt_tokens, completion_tokens, cost}}``
  (the server's count of the user's inline completions, sent with the scope read of inline
  completion) -> ``{"version": 1, "status": "ok" | "declined" (no session here)}``

The tools are this kernel's session's, as ``%%mistral --tools all`` sees them: the built-in
read-only notebook tools and every ``@tool`` registered here, run by the same
:class:`~mistral_magic.engine.tool_loop.LocalTools` with the same redaction (the configured
key, secret-named environment and user variables, credential patterns) and cut to
``max_chars``. Tools declared ``@tool(confirm=True)`` are not offered: the sidebar has no way
to ask the user yet (agent mode will), and one called anyway is refused, not run.
"""

from __future__ import annotations

import base64
import json
from typing import Any

MARKER = "__mistral_magic_tool__"
VERSION = 1
#: Bounds on what a request may ask for (the server asks for Mistral.tool_result_chars).
MIN_RESULT_CHARS = 200
MAX_RESULT_CHARS = 100_000

#: What the front end executes (kept in sync with labextension/src/kernel.ts).
SNIPPET = (
    "try:\n"
    "    import mistral_magic.kernel_entry as _mistral_magic_entry\n"
    "except Exception:\n"
    "    pass\n"
    "else:\n"
    '    _mistral_magic_entry.serve("REQUEST")\n'
    "    del _mistral_magic_entry\n"
)


def serve(request: str, shell: Any = None) -> None:
    """Answer ``request`` (base64 of the JSON request) with one marked line on stdout."""
    print(MARKER + respond(request, shell), flush=True)


def respond(request: str, shell: Any = None) -> str:
    """The answer to ``request`` as JSON text; never raises (a failure is an ``error``)."""
    try:
        decoded = json.loads(base64.b64decode(request, validate=True).decode("utf-8"))
        if not isinstance(decoded, dict):
            raise ValueError("the request is not a JSON object")
        if shell is None:
            from IPython import get_ipython

            shell = get_ipython()
        if decoded.get("op") == "definitions":
            answer = definitions(shell)
        elif decoded.get("op") == "run":
            answer = run(
                str(decoded.get("name", "")),
                decoded.get("arguments"),
                shell,
                max_chars=decoded.get("max_chars"),
            )
        elif decoded.get("op") == "inline_usage":
            answer = inline_usage(decoded.get("usage"), shell)
        else:
            raise ValueError(f"unknown op {decoded.get('op')!r}")
    except Exception as exc:  # a broken request or namespace must not break the sidebar
        answer = {"status": "error", "result": f"Error: {type(exc).__name__}: {exc}"[:500]}
    return json.dumps({"version": VERSION, **answer}, ensure_ascii=False)


def inline_usage(usage: Any, shell: Any) -> dict[str, Any]:
    """Keep the Jupyter server's count of the user's inline completions, which the page
    passes along with its scope read, for ``%mistral usage`` (a kernel without the extension
    loaded keeps nothing: the next read after ``%load_ext`` brings it)."""
    import time

    from .engine.usage import INLINE_USAGE, InlineUsageReport
    from .session import session_for

    report = InlineUsageReport.from_wire(usage, time.time())
    session = session_for(shell, create=False)
    if session is not None:
        session.remember(INLINE_USAGE, report)
    return {"status": "ok" if session is not None else "declined", "result": ""}


def definitions(shell: Any) -> dict[str, Any]:
    """The tools the model may call in this kernel, as the wire's ``tools`` entries."""
    toolbox = _toolbox(shell)
    offered = [tool for tool in toolbox.tools.values() if not tool.confirm]
    return {
        "tools": [tool.to_wire() for tool in offered],
        "not_offered": [tool.name for tool in toolbox.tools.values() if tool.confirm],
    }


def run(name: str, arguments: Any, shell: Any, *, max_chars: Any = None) -> dict[str, Any]:
    """Run one call as ``%%mistral --tools all`` would: validated, redacted, cut."""
    from mistral_magic.api.types import ToolCall
    from mistral_magic.engine.tool_loop import LocalTools, ToolEvent, ToolLimits
    from mistral_magic.session import session_for
    from mistral_magic.tools.notebook import tool_redactor

    chars = _result_chars(max_chars)
    call = ToolCall.from_parts("kernel", name, arguments)
    session = session_for(shell) if shell is not None else None
    base = session.redactor() if session is not None else None
    executor = LocalTools(_toolbox(shell), confirm=_cannot_ask, redactor=tool_redactor(shell, base))
    running = ToolEvent("kernel", call.name, call.arguments, "running")
    done = executor.run(call, running, ToolLimits(result_chars=chars))
    return {"status": done.status, "result": done.result, "seconds": round(done.seconds, 6)}


def _toolbox(shell: Any) -> Any:
    from mistral_magic.session import session_for
    from mistral_magic.tools.core import ALL

    if shell is None:  # not in IPython: the @tool functions only
        from mistral_magic.tools.core import select

        return select(ALL, [])
    return session_for(shell).toolbox(ALL)


def _cannot_ask(tool: Any, event: Any) -> bool:
    from mistral_magic.engine.tool_loop import ConfirmationUnavailable

    raise ConfirmationUnavailable("the sidebar cannot ask for a confirmation")


def _result_chars(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        from mistral_magic.engine.tool_loop import ToolLimits

        return ToolLimits().result_chars
    return max(MIN_RESULT_CHARS, min(MAX_RESULT_CHARS, value))
