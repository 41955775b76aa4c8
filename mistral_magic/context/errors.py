"""The last error of a live shell, as context: type, message, the failing cell, and a
traceback without ANSI colours, with cell files shown as ``In[n]`` and long stretches of library
frames condensed.

The work is bounded before any pass over the whole text: a 50 MB exception message is cut
(head and tail) as the traceback is formatted, then cleaned, redacted and clipped
(:func:`~mistral_magic.context.fit.fit`)."""

from __future__ import annotations

import linecache
import re
import sys
import traceback
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mistral_magic.context.fit import EDGE_CHARS, bound, fit
from mistral_magic.context.history import CELL_SOURCE_CHARS, INPUT_FILENAME, raw_inputs
from mistral_magic.context.items import KIND_ERROR, ContextItem, priority_for
from mistral_magic.context.redact import Redactor

ERROR_MESSAGE_CHARS = 1000
TRACEBACK_CHARS = 3000
#: A formatted piece of a traceback (an exception's message, above all) longer than this is
#: cut to its head and tail before anything else looks at it.
_PIECE_CHARS = 2 * TRACEBACK_CHARS + 4 * EDGE_CHARS


@dataclass(frozen=True)
class ErrorInfo:
    etype: str
    message: str  # cleaned, redacted (with the redactor given), clipped
    traceback: str  # the same; cell files shown as In[n]; long library stretches condensed
    cell_source: str | None  # as typed
    execution_count: int | None


def _count_for_filename(shell: Any, filename: str | None) -> int | None:
    if not filename:
        return None
    compiler = getattr(shell, "compile", None)
    format_code_name = getattr(compiler, "format_code_name", None)
    if format_code_name is not None:
        try:
            named = format_code_name(filename)
        except Exception:
            named = None
        if named:
            match = re.search(r"\[(\d+)\]", named[1])
            if match:
                return int(match.group(1))
    match = INPUT_FILENAME.search(filename)
    return int(match.group(1)) if match else None


def _walk_tb(tb: types.TracebackType | None) -> Iterator[types.TracebackType]:
    while tb is not None:
        yield tb
        tb = tb.tb_next


def _error_count(shell: Any, value: BaseException) -> int | None:
    if isinstance(value, SyntaxError):
        count = _count_for_filename(shell, value.filename)
        if count is not None:
            return count
    for tb in _walk_tb(value.__traceback__):
        count = _count_for_filename(shell, tb.tb_frame.f_code.co_filename)
        if count is not None:
            return count
    result = getattr(shell, "last_execution_result", None)
    if result is not None and value in (
        getattr(result, "error_in_exec", None),
        getattr(result, "error_before_exec", None),
    ):
        count = getattr(result, "execution_count", None)
        if isinstance(count, int):
            return count
    exceptions = getattr(getattr(shell, "history_manager", None), "exceptions", None)
    if isinstance(exceptions, dict):
        name, text = type(value).__name__, _safe_str(value)
        for count in sorted(exceptions, reverse=True):
            record = exceptions[count]
            if record.get("ename") == name and record.get("evalue") == text:
                return count
    return None


def _safe_str(value: BaseException) -> str:
    try:
        return str(value)
    except Exception:
        return "<unprintable message>"


def _qualified_type(exc_type: type) -> str:
    module = getattr(exc_type, "__module__", "") or ""
    if module in ("builtins", "__main__"):
        return exc_type.__qualname__
    return f"{module}.{exc_type.__qualname__}"


def _is_library_file(filename: str) -> bool:
    if filename.startswith("<") and not filename.startswith("<ipython-input"):
        return True  # <frozen importlib…>, <string>
    if not filename.startswith(("/", "\\")) and not re.match(r"^[A-Za-z]:[\\/]", filename):
        return True  # compiled-extension sources such as pandas/_libs/index.pyx
    return any(
        marker in filename
        for marker in ("site-packages", "dist-packages", f"python{sys.version_info[0]}.")
    )


def _short_library_path(filename: str) -> str:
    """``…/site-packages/pandas/core/frame.py`` -> ``pandas/core/frame.py``."""
    for marker in ("site-packages/", "dist-packages/", "site-packages\\", "dist-packages\\"):
        position = filename.rfind(marker)
        if position != -1:
            return filename[position + len(marker) :]
    return filename


def _is_ipython_machinery(filename: str) -> bool:
    normalized = filename.replace("\\", "/")
    return "/IPython/core/" in normalized or "/ipykernel/" in normalized


_FRAME_LINE = re.compile(r'^  File "(?P<file>[^"]*)", line (?P<line>\d+)(?P<rest>.*)$')


def _format_traceback(shell: Any, value: BaseException, drop_frames: bool) -> str:
    te = traceback.TracebackException(
        type(value), value, None if drop_frames else value.__traceback__, compact=True
    )
    pieces = (bound(piece, _PIECE_CHARS, _PIECE_CHARS) for piece in te.format(chain=True))
    lines = "".join(pieces).splitlines()
    return "\n".join(_condense_frames(shell, lines))


def _condense_frames(shell: Any, lines: list[str]) -> list[str]:
    """Show cell files as In[n]; collapse runs of 3+ library frames to first, marker, last."""
    out: list[str] = []
    library_run: list[list[str]] = []

    def flush() -> None:
        if len(library_run) >= 3:
            out.extend(library_run[0])
            out.append(f"  [… {len(library_run) - 2} library frames …]")
            out.extend(library_run[-1])
        else:
            for frame in library_run:
                out.extend(frame)
        library_run.clear()

    index = 0
    at_section_start = False  # right after "Traceback (most recent call last):"
    while index < len(lines):
        line = lines[index]
        match = _FRAME_LINE.match(line)
        if not match:
            flush()
            out.append(line)
            at_section_start = line.startswith("Traceback (most recent call last)")
            index += 1
            continue
        frame = [line]
        index += 1
        while index < len(lines) and lines[index].startswith("    "):
            frame.append(lines[index])
            index += 1
        filename = match.group("file")
        if at_section_start and _is_ipython_machinery(filename):
            continue  # the shell's own exec() frame above the cell
        at_section_start = False
        count = _count_for_filename(shell, filename)
        if count is not None:
            flush()
            frame[0] = f"  In[{count}], line {match.group('line')}{match.group('rest')}"
            out.extend(frame)
        elif _is_library_file(filename):
            short = _short_library_path(filename)
            if short != filename:
                frame[0] = f'  File "{short}", line {match.group("line")}{match.group("rest")}'
            library_run.append(frame)
        else:
            flush()
            out.extend(frame)
    flush()
    return out


def last_error(shell: Any, redactor: Redactor | None = None) -> ErrorInfo | None:
    """The last exception IPython showed (``sys.last_value``), or None.

    KeyboardInterrupt is not an error for context.
    """
    value = getattr(sys, "last_value", None)
    if not isinstance(value, BaseException):
        return None
    return error_info(shell, value, redactor)


def cell_count_for_filename(shell: Any, filename: str | None) -> int | None:
    """The execution count of the cell compiled under ``filename``, if it is a cell."""
    return _count_for_filename(shell, filename)


def error_info(
    shell: Any, value: BaseException, redactor: Redactor | None = None
) -> ErrorInfo | None:
    """:class:`ErrorInfo` for an exception raised in this shell (None for KeyboardInterrupt).

    Message and traceback are redacted with ``redactor`` before they are clipped; without
    one they are only cleaned and clipped (for callers that need the cell and count alone).
    """
    if isinstance(value, KeyboardInterrupt):
        return None
    count = _error_count(shell, value)
    is_cell_syntax_error = isinstance(value, SyntaxError) and count is not None
    try:
        text = _format_traceback(shell, value, drop_frames=is_cell_syntax_error)
    except Exception:
        text = f"{type(value).__name__}: {bound(_safe_str(value), _PIECE_CHARS, _PIECE_CHARS)}"
    message = _safe_str(value)
    if isinstance(value, SyntaxError) and count is not None and value.msg:
        message = str(value.msg)
    source = None
    if count is not None:
        inputs = raw_inputs(shell)
        if 0 < count < len(inputs):
            source = inputs[count]
    if source is None and isinstance(value, SyntaxError) and value.filename:
        source = "".join(linecache.getlines(value.filename)) or None
    return ErrorInfo(
        etype=_qualified_type(type(value)),
        message=fit(message, ERROR_MESSAGE_CHARS, redactor),
        traceback=fit(text, TRACEBACK_CHARS, redactor, middle=True),
        cell_source=source,
        execution_count=count,
    )


def error_item(info: ErrorInfo, redactor: Redactor) -> ContextItem:
    """The error as a context item: summary line, traceback, the failing cell's source."""
    where = f" in In[{info.execution_count}]" if info.execution_count is not None else ""
    parts = [f"{info.etype}{where}: {info.message}", info.traceback]
    if info.cell_source:
        source = fit(info.cell_source, CELL_SOURCE_CHARS, redactor).rstrip()
        parts.append(f"Source of the failing cell:\n```python\n{source}\n```")
    # message and traceback are already redacted; the whole is again, for what only shows
    # when the parts are together
    text = fit("\n".join(parts), ERROR_MESSAGE_CHARS + TRACEBACK_CHARS * 2, redactor)
    label = f"error in [{info.execution_count}]" if info.execution_count is not None else "error"
    return ContextItem(
        KIND_ERROR, "error", label, text, priority_for(KIND_ERROR), language="python"
    )
