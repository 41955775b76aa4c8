"""Kernel side of the JupyterLab sidebar's variable chips, and of inline completion's scope.

The sidebar runs, as a silent execution (no history, no execution count, no output in the
notebook), the code in :data:`SNIPPET`; it prints one line, :data:`MARKER` followed by JSON:

    {"version": 1, "items": [{"kind", "key", "label", "text"}, ...]}

``items`` are the kernel collector's data frame and variable items (described, secret-named
variables skipped, text redacted), most relevant first. When mistral_magic is not importable
in that kernel the snippet prints nothing and the sidebar shows no variable chips.

Inline completion reads the scope the same way, after each execution (never per keystroke):
:data:`SCOPE_SNIPPET` prints :data:`SCOPE_MARKER` followed by

    {"version": 1, "names": ["sales · DataFrame 3×2", ...], "frames": {"sales": "..."}}

(:class:`~mistral_magic.context.kernel.KernelScope`: labels of the names in scope, and per
data frame its columns and dtypes; secret-named variables skipped, text redacted).
"""

from __future__ import annotations

import json
from typing import Any

MARKER = "__mistral_magic_snapshot__"
SCOPE_MARKER = "__mistral_magic_scope__"
VERSION = 1

#: What the front end executes (kept in sync with labextension/src/kernel.ts).
SNIPPET = (
    "try:\n"
    "    import mistral_magic.context.snapshot as _mistral_magic_snapshot\n"
    "except Exception:\n"
    "    pass\n"
    "else:\n"
    "    _mistral_magic_snapshot.print_snapshot()\n"
    "    del _mistral_magic_snapshot\n"
)


def kernel_items(shell: Any = None, *, time_budget: float = 1.0) -> list[dict[str, Any]]:
    """Data frame and variable items of the running kernel, as plain dicts."""
    from mistral_magic.context.items import KIND_DATAFRAME, KIND_VARIABLE
    from mistral_magic.context.kernel import collect

    if shell is None:
        from IPython import get_ipython

        shell = get_ipython()
    if shell is None:
        return []
    items = collect(shell, "", sources=("vars",), time_budget=time_budget)
    return [
        {"kind": item.kind, "key": item.key, "label": item.label, "text": item.text}
        for item in items
        if item.kind in (KIND_DATAFRAME, KIND_VARIABLE)
    ]


def kernel_json(shell: Any = None) -> str:
    """The snapshot as JSON text (never raises: on failure ``items`` is empty and ``error``
    says why)."""
    try:
        payload: dict[str, Any] = {"version": VERSION, "items": kernel_items(shell)}
    except Exception as exc:  # a broken namespace must not break the sidebar
        payload = {"version": VERSION, "items": [], "error": type(exc).__name__}
    return json.dumps(payload, ensure_ascii=False)


def print_snapshot(shell: Any = None) -> None:
    print(MARKER + kernel_json(shell), flush=True)


#: What inline completion executes (kept in sync with labextension/src/inlineScope.ts).
SCOPE_SNIPPET = (
    "try:\n"
    "    import mistral_magic.context.snapshot as _mistral_magic_snapshot\n"
    "except Exception:\n"
    "    pass\n"
    "else:\n"
    "    _mistral_magic_snapshot.print_scope()\n"
    "    del _mistral_magic_snapshot\n"
)


def scope_json(shell: Any = None) -> str:
    """The kernel's scope for inline completion as JSON text (never raises: on failure
    ``names`` and ``frames`` are empty and ``error`` says why)."""
    from mistral_magic.context.kernel import kernel_scope

    if shell is None:
        from IPython import get_ipython

        shell = get_ipython()
    payload: dict[str, Any] = {"version": VERSION, "names": [], "frames": {}}
    try:
        if shell is not None:
            scope = kernel_scope(shell)
            payload.update(names=scope.names, frames=scope.frames)
    except Exception as exc:  # a broken namespace must not break the editor
        payload["error"] = type(exc).__name__
    return json.dumps(payload, ensure_ascii=False)


def print_scope(shell: Any = None) -> None:
    print(SCOPE_MARKER + scope_json(shell), flush=True)
