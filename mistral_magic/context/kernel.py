"""Context from a live IPython shell: what the prompt names, the last error, data frames,
recent cells and other user variables.

No hooks are needed: cell sources come from the history manager, outputs from IPython's
output history (``history_manager.outputs`` on IPython 9 includes printed text; otherwise the
``Out`` values), and the last error from ``sys.last_value`` (set by IPython's
``showtraceback``), mapped to its cell through the compiler's cell-filename map
(``shell.compile.format_code_name``, which also knows ipykernel's ``/tmp/ipykernel_…/….py``
names), the last execution result, or IPython 9's per-cell exception record.

Time bounds: describing runs under a total deadline (``time_budget`` seconds, checked between
values; once it has passed, the remaining values get a one-line label or are listed by name)
and a hard per-value limit (``value_time_limit``, see :mod:`guard`). A describer that raises or
runs out of time yields ``"<could not describe: …>"`` for that value only.
"""

from __future__ import annotations

import inspect
import linecache
import re
import sys
import time
import traceback
import types
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace
from typing import Any

from mistral_magic.context.describe import (
    _is_lib_type,
    bounded_repr,
    clip,
    could_not_describe,
    describe,
    describe_brief,
    runs_user_code,
    short_label,
)
from mistral_magic.context.guard import Deadline, DescribeTimeout, time_limit
from mistral_magic.context.items import (
    BAND_WIDTH,
    KIND_CELL,
    KIND_DATAFRAME,
    KIND_ERROR,
    KIND_NAMED,
    KIND_VARIABLE,
    ContextItem,
    priority_for,
)
from mistral_magic.context.redact import Redactor, is_secret_name

#: An error counts as recent if raised in one of this many last executed (non-%mistral) cells.
RECENT_ERROR_CELLS = 3
NAMED_CHARS = 2500
FRAME_CHARS = 1500
BRIEF_FRAME_CHARS = 600
VARIABLE_CHARS = 500
CELL_SOURCE_CHARS = 4000
ERROR_MESSAGE_CHARS = 1000
TRACEBACK_CHARS = 3000

_IPYTHON_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython"})
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
_CELL_REFERENCE = re.compile(
    r"\b(?:In|Out)\s*\[\s*(\d+)\s*\]|\bcell\s*(?:#|no\.?|number)?\s*\[?\s*(\d+)\b", re.IGNORECASE
)
_NAME_REFERENCE = re.compile(
    r"\{([A-Za-z_][A-Za-z0-9_]*)\}|`([A-Za-z_][A-Za-z0-9_]*)[^`\n]*`|\b([A-Za-z_][A-Za-z0-9_]*)\b"
)
_IDENTIFIER = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")
_INPUT_FILENAME = re.compile(r"<ipython-input-(\d+)-[0-9a-f]+>")
#: Bare prompt words that are never taken as variable references ("plot a histogram").
_PROSE_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "go",
        "he",
        "her",
        "his",
        "how",
        "i",
        "if",
        "in",
        "is",
        "it",
        "its",
        "me",
        "my",
        "no",
        "not",
        "of",
        "on",
        "or",
        "our",
        "she",
        "so",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "up",
        "us",
        "was",
        "we",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
    ]
)
_MISTRAL_MAGIC = re.compile(
    r"^\s*(?:%%?mistral\b|get_ipython\(\)\.run_(?:cell|line)_magic\(\s*['\"]mistral['\"])"
)


@dataclass(frozen=True)
class ErrorInfo:
    etype: str
    message: str
    traceback: str  # ANSI-free; cell files shown as In[n]; long library stretches condensed
    cell_source: str | None
    execution_count: int | None


# --------------------------------------------------------------------------------------------
# History


def _raw_inputs(shell: Any) -> list[str]:
    """Cell sources indexed by execution count (index 0 is empty), as typed."""
    history = getattr(shell, "history_manager", None)
    raw = getattr(history, "input_hist_raw", None)
    if isinstance(raw, list) and len(raw) > 1:
        return raw
    parsed = shell.user_ns.get("In")
    return parsed if isinstance(parsed, list) else [""]


def _running_count(shell: Any) -> int | None:
    """Execution count of the cell running right now (e.g. the %%mistral cell), if any."""
    result = getattr(getattr(shell, "displayhook", None), "exec_result", None)
    count = getattr(result, "execution_count", None)
    return count if isinstance(count, int) else None


def is_mistral_invocation(source: str) -> bool:
    return bool(_MISTRAL_MAGIC.match(source or ""))


def _executed_counts(shell: Any, inputs: list[str], limit: int | None = None) -> list[int]:
    """The last ``limit`` (default: all) finished cells, oldest first, without %mistral
    invocations. (Also used by :mod:`mistral_magic.notebook_tools`.)"""
    running = _running_count(shell)
    found: list[int] = []
    for n in range(len(inputs) - 1, 0, -1):
        if limit is not None and len(found) >= limit:
            break
        if n != running and inputs[n].strip() and not is_mistral_invocation(inputs[n]):
            found.append(n)
    found.reverse()
    return found


def _history_outputs(shell: Any, count: int) -> Iterator[tuple[str, str]]:
    """(kind, text) for a cell's outputs: stdout, stderr, result, display, error."""
    history = getattr(shell, "history_manager", None)
    outputs = getattr(history, "outputs", None)
    recorded = outputs.get(count) if isinstance(outputs, dict) else None
    if recorded:
        for output in recorded:
            bundle = getattr(output, "bundle", {}) or {}
            kind = getattr(output, "output_type", "")
            if kind in ("out_stream", "err_stream"):
                text = "".join(map(str, bundle.get("stream", [])))
                yield ("stdout" if kind == "out_stream" else "stderr"), text
            elif "text/plain" in bundle:
                text = bundle["text/plain"]
                text = "".join(text) if isinstance(text, list) else str(text)
                yield ("result" if kind == "execute_result" else "display"), text
    else:
        reprs = getattr(history, "output_hist_reprs", None)
        if isinstance(reprs, dict) and count in reprs:
            yield "result", str(reprs[count])
        else:
            out = shell.user_ns.get("Out")
            if isinstance(out, dict) and count in out:
                yield "result", bounded_repr(out[count], 4000)
    exceptions = getattr(history, "exceptions", None)
    if isinstance(exceptions, dict) and count in exceptions:
        record = exceptions[count]
        yield "error", f"{record.get('ename', 'Error')}: {record.get('evalue', '')}"


def _clip_middle(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    marker = "\n[… clipped …]\n"
    head = max_chars // 3
    tail = max_chars - head - len(marker)
    return text[:head] + marker + text[-tail:]


def _cell_text(shell: Any, count: int, source: str, redactor: Redactor, output_chars: int) -> str:
    source = _redact_clipped(redactor, source, CELL_SOURCE_CHARS)
    parts = [f"```python\n{source.rstrip()}\n```"]
    for kind, text in _history_outputs(shell, count):
        text = _INPUT_FILENAME.sub(r"In[\1]", _ANSI.sub("", text)).rstrip()
        if not text:
            continue
        text = _redact_clipped(redactor, text, output_chars, middle=True)
        if kind == "result":
            parts.append(f"Out[{count}]:\n{text}")
        else:
            parts.append(f"{kind}:\n{text}")
    return "\n".join(parts)


def _redact_clipped(redactor: Redactor, text: str, max_chars: int, middle: bool = False) -> str:
    """Redact, then clip. Pre-clips very long text first so redaction stays cheap; the final
    clip is much shorter than the pre-clip, so no secret is cut in half at an edge."""
    if len(text) > 4 * max_chars:
        text = _clip_middle(text, 4 * max_chars)
    text = redactor.redact(text)
    return _clip_middle(text, max_chars) if middle else clip(text, max_chars)


# --------------------------------------------------------------------------------------------
# Errors


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
    match = _INPUT_FILENAME.search(filename)
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
    lines = "".join(te.format(chain=True)).splitlines()
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


def last_error(shell: Any) -> ErrorInfo | None:
    """The last exception IPython showed (``sys.last_value``), or None.

    KeyboardInterrupt is not an error for context.
    """
    value = getattr(sys, "last_value", None)
    if not isinstance(value, BaseException):
        return None
    return error_info(shell, value)


def cell_count_for_filename(shell: Any, filename: str | None) -> int | None:
    """The execution count of the cell compiled under ``filename``, if it is a cell."""
    return _count_for_filename(shell, filename)


def error_info(shell: Any, value: BaseException) -> ErrorInfo | None:
    """:class:`ErrorInfo` for an exception raised in this shell (None for KeyboardInterrupt)."""
    if isinstance(value, KeyboardInterrupt):
        return None
    count = _error_count(shell, value)
    is_cell_syntax_error = isinstance(value, SyntaxError) and count is not None
    try:
        text = _format_traceback(shell, value, drop_frames=is_cell_syntax_error)
    except Exception:
        text = f"{type(value).__name__}: {_safe_str(value)}"
    message = _ANSI.sub("", _safe_str(value))
    if isinstance(value, SyntaxError) and count is not None and value.msg:
        message = str(value.msg)
    source = None
    if count is not None:
        inputs = _raw_inputs(shell)
        if 0 < count < len(inputs):
            source = inputs[count]
    if source is None and isinstance(value, SyntaxError) and value.filename:
        source = "".join(linecache.getlines(value.filename)) or None
    return ErrorInfo(
        etype=_qualified_type(type(value)),
        message=clip(_printable(message), ERROR_MESSAGE_CHARS),
        traceback=_clip_middle(_printable(_ANSI.sub("", text)), TRACEBACK_CHARS),
        cell_source=source,
        execution_count=count,
    )


def _printable(text: str) -> str:
    """Lone surrogates (undecodable bytes of file names, ``surrogateescape`` text) written as
    ``\\udcff`` escapes, so the text encodes as UTF-8 in a request."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _error_item(info: ErrorInfo, redactor: Redactor) -> ContextItem:
    where = f" in In[{info.execution_count}]" if info.execution_count is not None else ""
    parts = [f"{info.etype}{where}: {info.message}", info.traceback]
    if info.cell_source:
        parts.append(f"Source of the failing cell:\n```python\n{info.cell_source.rstrip()}\n```")
    text = _redact_clipped(redactor, "\n".join(parts), ERROR_MESSAGE_CHARS + TRACEBACK_CHARS * 2)
    label = f"error in [{info.execution_count}]" if info.execution_count is not None else "error"
    return ContextItem(KIND_ERROR, "error", label, text, priority_for(KIND_ERROR))


# --------------------------------------------------------------------------------------------
# Variables


def _is_library_object(value: object) -> bool:
    """Modules, typing constructs, and functions / classes not defined in the notebook."""
    if isinstance(value, types.ModuleType):
        return True
    if (type(value).__module__ or "") == "typing":
        return True
    if isinstance(value, type) or inspect.isroutine(value):
        return getattr(value, "__module__", None) != "__main__"
    return False


def user_variables(shell: Any) -> dict[str, object]:
    """The user's own variables, as ``%who`` would list them, minus libraries and secrets."""
    hidden = getattr(shell, "user_ns_hidden", {}) or {}
    missing = object()
    found: dict[str, object] = {}
    for name, value in list(shell.user_ns.items()):
        if not isinstance(name, str) or name.startswith("_") or name in _IPYTHON_NAMES:
            continue
        if hidden.get(name, missing) is value:
            continue
        if is_secret_name(name) or _is_library_object(value):
            continue
        found[name] = value
    return found


def _secret_values(shell: Any) -> list[str]:
    """String values of secret-named variables, so they are redacted wherever they appear."""
    values: list[str] = []
    for name, value in list(shell.user_ns.items()):
        if not isinstance(name, str) or not is_secret_name(name):
            continue
        if isinstance(value, str):
            values.append(value)
        elif isinstance(value, dict):
            values.extend(v for v in list(value.values())[:50] if isinstance(v, str))
    return values


def _full_redactor(shell: Any, redactor: Redactor | None) -> Redactor:
    """The given redactor plus secret-named environment variables and user variables."""
    base = Redactor.from_environment(redactor.secrets if redactor is not None else ())
    return base.with_secrets(_secret_values(shell))


def shell_redactor(shell: Any, redactor: Redactor | None = None) -> Redactor:
    """``redactor`` plus the secrets the shell knows: secret-named environment variables and
    the values of secret-named user variables (what :func:`collect` redacts with)."""
    return _full_redactor(shell, redactor)


def _is_frame_like(value: object) -> bool:
    return any(
        _is_lib_type(value, package, kind)
        for package in ("pandas", "polars")
        for kind in ("DataFrame", "Series")
    )


def _mention_order(inputs: list[str], counts: list[int]) -> dict[str, int]:
    """Identifier -> rank of the newest cell mentioning it (0 = most recent)."""
    rank: dict[str, int] = {}
    for position, count in enumerate(reversed(counts)):
        for name in _IDENTIFIER.findall(inputs[count]):
            rank.setdefault(name, position)
    return rank


class _Describer:
    """Describes values under the collection deadline and the per-value hard limit."""

    def __init__(self, deadline: Deadline, value_time_limit: float) -> None:
        self.deadline = deadline
        self.value_time_limit = value_time_limit

    def __call__(self, value: object, name: str, max_chars: int, brief: bool = False) -> str | None:
        if self.deadline.passed():
            return None
        limit = min(self.value_time_limit, max(self.deadline.remaining(), 0.05))
        started = time.perf_counter()
        try:
            with time_limit(limit, allow_tracing=runs_user_code(value)):
                if brief:
                    return describe_brief(value, name, max_chars=max_chars)
                return describe(value, name, max_chars=max_chars)
        except DescribeTimeout:
            elapsed = time.perf_counter() - started
            return could_not_describe(value, name, f"took longer than {elapsed:.1f} s")


# --------------------------------------------------------------------------------------------
# The prompt


@dataclass
class _PromptReferences:
    names: list[str]
    cells: list[int]


def prompt_references(prompt: str) -> _PromptReferences:
    """Variable names (``{name}``, `` `name` `` or bare identifiers) and cell numbers
    (``In[7]``, ``Out[7]``, ``cell 7``) mentioned in the prompt, in order."""
    cells: list[int] = []
    for match in _CELL_REFERENCE.finditer(prompt):
        number = int(match.group(1) or match.group(2))
        if number not in cells:
            cells.append(number)
    names: list[str] = []
    for match in _NAME_REFERENCE.finditer(prompt):
        explicit = match.group(1) or match.group(2)
        name = explicit or match.group(3)
        if not explicit and (len(name) < 2 or name.lower() in _PROSE_WORDS):
            continue
        if name not in names:
            names.append(name)
    return _PromptReferences(names, cells)


# --------------------------------------------------------------------------------------------
# Collection


def collect(
    shell: Any,
    prompt: str = "",
    *,
    sources: Collection[str] = ("cells", "vars", "error"),
    redactor: Redactor | None = None,
    max_cells: int = 20,
    cell_output_chars: int = 2000,
    max_described_frames: int = 8,
    max_variables: int = 40,
    time_budget: float = 1.0,
    value_time_limit: float = 0.5,
) -> list[ContextItem]:
    """Context items from a live shell, sorted by priority (most important first).

    1. ``named``: variables the prompt names (needs "vars" in ``sources``) and cells it names
       (``In[7]``, ``cell 7``; needs "cells"), in prompt order;
    2. ``error``: the last error if raised in one of the last 3 executed cells ("error");
    3. ``dataframe``: pandas / polars frames and series, most recently used first (by the
       newest recent cell that mentions them), the first ``max_described_frames`` described
       in full ("vars");
    4. ``cell``: up to ``max_cells`` recent cells, newest first, with their text outputs
       (clipped to ``cell_output_chars``); %mistral cells and the running cell are skipped
       ("cells");
    5. ``variable``: first the remaining frames, described by shape and column dtypes only
       (kind still ``dataframe``: many idle frames must not crowd out the recent cells), then
       other user variables, most recently used first; after ``max_variables`` one item
       lists the rest by label ("vars").

    Secret-named variables are never described. All text goes through ``redactor`` extended
    with the values of secret-named environment variables (:meth:`Redactor.from_environment`)
    and the string values of secret-named user variables.
    """
    deadline = Deadline(time_budget)
    describer = _Describer(deadline, value_time_limit)
    redactor = _full_redactor(shell, redactor)
    want_cells, want_vars = "cells" in sources, "vars" in sources

    inputs = _raw_inputs(shell)
    executed = _executed_counts(shell, inputs, max(max_cells * 3, 30, RECENT_ERROR_CELLS))
    variables = user_variables(shell) if want_vars else {}
    references = prompt_references(prompt or "")
    items: list[ContextItem] = []
    taken: set[str] = set()

    def add(item: ContextItem, *, redacted: bool = False) -> None:
        if item.key in taken:
            return
        taken.add(item.key)
        text = item.text if redacted else redactor.redact(item.text)
        items.append(replace(item, text=_printable(text)))  # outputs may hold lone surrogates

    # 1. What the prompt names.
    named_rank = 0
    if want_vars:
        for name in references.names:
            if name in variables:
                value = variables[name]
                text = describer(value, name, NAMED_CHARS) or short_label(value, name)
                priority = priority_for(KIND_NAMED, named_rank)
                add(_var_item(KIND_NAMED, name, value, text, priority))
                named_rank += 1
    if want_cells:
        for count in references.cells:
            if 0 < count < len(inputs) and count != _running_count(shell):
                text = _cell_text(shell, count, inputs[count], redactor, cell_output_chars * 2)
                priority = priority_for(KIND_NAMED, named_rank)
                add(
                    ContextItem(KIND_NAMED, f"cell:{count}", f"In[{count}]", text, priority),
                    redacted=True,
                )
                named_rank += 1

    # 2. The last error, if recent.
    error_count: int | None = None
    if "error" in sources:
        info = last_error(shell)
        recent = executed[-RECENT_ERROR_CELLS:]
        if info is not None and info.execution_count in recent:
            error_count = info.execution_count
            add(_error_item(info, redactor), redacted=True)

    # 3. Data frames and series; 5. other variables (ranked by recent use).
    mentioned = _mention_order(inputs, executed)
    order = list(variables)
    definition_rank = {name: len(order) - i for i, name in enumerate(order)}
    ranked = sorted(order, key=lambda n: (mentioned.get(n, len(inputs) + 1), definition_rank[n]))
    frames = [n for n in ranked if _is_frame_like(variables[n]) and f"var:{n}" not in taken]
    others = [n for n in ranked if not _is_frame_like(variables[n])]
    full_frames, brief_frames = frames[:max_described_frames], frames[max_described_frames:]
    for rank, name in enumerate(full_frames):
        value = variables[name]
        text = describer(value, name, FRAME_CHARS) or short_label(value, name)
        add(_var_item(KIND_DATAFRAME, name, value, text, priority_for(KIND_DATAFRAME, rank)))

    # 4. Recent cells, newest first.
    if want_cells:
        recent_cells = [
            n for n in reversed(executed) if n != error_count and f"cell:{n}" not in taken
        ][:max_cells]
        for rank, count in enumerate(recent_cells):
            text = _cell_text(shell, count, inputs[count], redactor, cell_output_chars)
            priority = priority_for(KIND_CELL, rank)
            add(
                ContextItem(KIND_CELL, f"cell:{count}", f"In[{count}]", text, priority),
                redacted=True,
            )

    # 5. Idle frames briefly, then other variables.
    for rank, name in enumerate(brief_frames):
        value = variables[name]
        text = describer(value, name, BRIEF_FRAME_CHARS, brief=True) or short_label(value, name)
        add(_var_item(KIND_DATAFRAME, name, value, text, priority_for(KIND_VARIABLE, rank)))
    left_over: list[str] = []
    described = 0
    for name in others:
        if f"var:{name}" in taken:
            continue
        value = variables[name]
        text = describer(value, name, VARIABLE_CHARS) if described < max_variables else None
        if text is None:
            left_over.append(short_label(value, name))
            continue
        priority = priority_for(KIND_VARIABLE, len(brief_frames) + described)
        add(_var_item(KIND_VARIABLE, name, value, text, priority))
        described += 1
    if left_over:
        listing = "Other variables: " + "; ".join(left_over)
        label = f"{len(left_over)} more variables"
        priority = priority_for(KIND_VARIABLE, BAND_WIDTH - 1)
        add(ContextItem(KIND_VARIABLE, "vars:more", label, clip(listing, 3000), priority))

    items.sort(key=lambda item: item.priority)
    return items


def _var_item(kind: str, name: str, value: object, text: str, priority: int) -> ContextItem:
    return ContextItem(kind, f"var:{name}", short_label(value, name), text, priority)
