"""Context from a live IPython shell: what the prompt names, the last error, data frames,
recent cells and other user variables.

No hooks are needed: cell sources come from the history manager, outputs from IPython's
output history (see :mod:`history`), and the last error from ``sys.last_value`` (see
:mod:`errors`).

Time bounds: describing runs under a total deadline (``time_budget`` seconds, checked between
values; once it has passed, the remaining values get a one-line label or are listed by name)
and a hard per-value limit (``value_time_limit``, see :mod:`guard`). A describer that raises or
runs out of time yields ``"<could not describe: …>"`` for that value only.
"""

from __future__ import annotations

import inspect
import re
import time
import types
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any

from mistral_magic.context.describe import (
    _is_lib_type,
    could_not_describe,
    describe,
    describe_brief,
    runs_user_code,
    short_label,
)
from mistral_magic.context.errors import error_item, last_error
from mistral_magic.context.fit import clip, printable
from mistral_magic.context.guard import Deadline, DescribeTimeout, time_limit
from mistral_magic.context.history import (
    cell_text,
    executed_counts,
    raw_inputs,
    running_count,
)
from mistral_magic.context.items import (
    BAND_WIDTH,
    KIND_CELL,
    KIND_DATAFRAME,
    KIND_NAMED,
    KIND_VARIABLE,
    ORIGIN_KERNEL,
    ContextItem,
    priority_for,
)
from mistral_magic.context.redact import Redactor, is_secret_name, is_secret_value_of

#: Cells of the live kernel: IPython runs Python.
_PYTHON = {"origin": ORIGIN_KERNEL, "language": "python"}
#: An error counts as recent if raised in one of this many last executed (non-%mistral) cells.
RECENT_ERROR_CELLS = 3
NAMED_CHARS = 2500
PLACEHOLDER_CHARS = 1500
FRAME_CHARS = 1500
BRIEF_FRAME_CHARS = 600
VARIABLE_CHARS = 500

#: Names IPython itself puts into the namespace: the history lists and their shortcuts, the
#: last outputs, the shell. Never the user's variables, never shown to the model.
_IPYTHON_NAMES = frozenset(
    {"In", "Out", "exit", "quit", "get_ipython", "_ih", "_oh", "_dh", "_i", "_ii", "_iii"}
)
_IPYTHON_NUMBERED = re.compile(r"_{1,3}|_i?\d+")  # _, __, ___, _i3 (input 3), _3 (output 3)
_CELL_REFERENCE = re.compile(
    r"\b(?:In|Out)\s*\[\s*(\d+)\s*\]|\bcell\s*(?:#|no\.?|number)?\s*\[?\s*(\d+)\b", re.IGNORECASE
)
_NAME_REFERENCE = re.compile(
    r"\{([A-Za-z_][A-Za-z0-9_]*)\}|`([A-Za-z_][A-Za-z0-9_]*)[^`\n]*`|\b([A-Za-z_][A-Za-z0-9_]*)\b"
)
_IDENTIFIER = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")
#: Bare prompt words that are never taken as variable references ("plot a histogram").
_PROSE_WORDS = frozenset(
    re.findall(
        r"\w+",
        "a an and are as at be but by can do does for from go he her his how i if in is it its "
        "me my no not of on or our she so that the their them then there these they this to up "
        "us was we what when where which who why will with you your",
    )
)


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


def is_ipython_name(name: str) -> bool:
    """Whether ``name`` is one IPython keeps in the namespace (``In``, ``_ih``, ``_i3``, …)."""
    return name in _IPYTHON_NAMES or _IPYTHON_NUMBERED.fullmatch(name) is not None


def visible_variables(shell: Any) -> dict[str, object]:
    """What the model may look up by name (``{name}``, the notebook tools): the namespace
    without IPython's own entries (history lists, output caches, ``exit``, ``get_ipython``),
    dunder names, and secret-named variables."""
    hidden = getattr(shell, "user_ns_hidden", {}) or {}
    missing = object()
    found: dict[str, object] = {}
    for name, value in list(getattr(shell, "user_ns", {}).items()):
        if not isinstance(name, str) or name.startswith("__") or is_ipython_name(name):
            continue
        if hidden.get(name, missing) is value or is_secret_name(name):
            continue
        found[name] = value
    return found


def user_variables(shell: Any) -> dict[str, object]:
    """The user's own variables, as ``%who`` would list them: :func:`visible_variables`
    without ``_private`` names, modules and library functions or classes."""
    return {
        name: value
        for name, value in visible_variables(shell).items()
        if not name.startswith("_") and not _is_library_object(value)
    }


def _secret_values(shell: Any) -> list[str]:
    """String values of secret-named variables, so they are redacted wherever they appear.
    (A variable named only ``key`` or ``token`` counts when its value looks like a credential:
    ``key = "input_ids"`` after a loop must not redact every "input_ids" in the context.)"""
    values: list[str] = []
    for name, value in list(shell.user_ns.items()):
        if not isinstance(name, str) or not is_secret_name(name):
            continue
        if isinstance(value, str):
            candidates = [value]
        elif isinstance(value, dict):
            candidates = [v for v in list(value.values())[:50] if isinstance(v, str)]
        else:
            continue
        values.extend(v for v in candidates if is_secret_value_of(name, v))
    return values


def _full_redactor(shell: Any, redactor: Redactor | None) -> Redactor:
    """The given redactor plus secret-named environment variables and user variables."""
    base = Redactor.from_environment(redactor.secrets if redactor is not None else ())
    return base.with_secrets(_secret_values(shell))


def shell_redactor(shell: Any, redactor: Redactor | None = None) -> Redactor:
    """``redactor`` plus the secrets the shell knows: secret-named environment variables and
    the values of secret-named user variables (what :func:`collect` redacts with)."""
    return _full_redactor(shell, redactor)


def is_frame_like(value: object) -> bool:
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


class GuardedDescriber:
    """:func:`describe` of user values under a total deadline (``time_budget`` seconds) and a
    hard per-value limit (``value_time_limit``, see :mod:`guard`), redacted with
    ``redactor``: the one guard for every description of a user value (the context, ``{name}``
    in a prompt, the notebook tools, the variables of a failing line). A value it runs out of
    time for is given by its label."""

    def __init__(
        self, redactor: Redactor | None, *, time_budget: float = 1.0, value_time_limit: float = 0.5
    ) -> None:
        self.redactor = redactor
        self.deadline = Deadline(time_budget)
        self.value_time_limit = value_time_limit

    def out_of_time(self) -> bool:
        return self.deadline.passed()

    def __call__(
        self, value: object, name: str, max_chars: int = PLACEHOLDER_CHARS, *, brief: bool = False
    ) -> str:
        if self.deadline.passed():
            return short_label(value, name)
        limit = min(self.value_time_limit, max(self.deadline.remaining(), 0.05))
        started = time.perf_counter()
        try:
            with time_limit(limit, allow_tracing=runs_user_code(value)):
                if brief:
                    return describe_brief(value, name, max_chars=max_chars, redactor=self.redactor)
                return describe(value, name, max_chars=max_chars, redactor=self.redactor)
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
    redactor = _full_redactor(shell, redactor)
    describer = GuardedDescriber(
        redactor, time_budget=time_budget, value_time_limit=value_time_limit
    )
    want_cells, want_vars = "cells" in sources, "vars" in sources

    inputs = raw_inputs(shell)
    executed = executed_counts(shell, inputs, max(max_cells * 3, 30, RECENT_ERROR_CELLS))
    variables = user_variables(shell) if want_vars else {}
    references = prompt_references(prompt or "")
    items: list[ContextItem] = []
    taken: set[str] = set()

    # redacted=True: the text went through fit() with this redactor already (cells, the
    # error, the describer's output), so only what is built here is redacted in add()
    def add(item: ContextItem, *, redacted: bool = False) -> None:
        if item.key in taken:
            return
        taken.add(item.key)
        text = item.text if redacted else redactor.redact(item.text)
        items.append(replace(item, text=printable(text)))  # outputs may hold lone surrogates

    # 1. What the prompt names.
    named_rank = 0
    if want_vars:
        for name in references.names:
            if name in variables:
                value = variables[name]
                text = describer(value, name, NAMED_CHARS)
                priority = priority_for(KIND_NAMED, named_rank)
                add(_var_item(KIND_NAMED, name, value, text, priority), redacted=True)
                named_rank += 1
    if want_cells:
        for count in references.cells:
            if 0 < count < len(inputs) and count != running_count(shell):
                text = cell_text(shell, count, inputs[count], redactor, cell_output_chars * 2)
                priority = priority_for(KIND_NAMED, named_rank)
                add(
                    ContextItem(
                        KIND_NAMED, f"cell:{count}", f"In[{count}]", text, priority, **_PYTHON
                    ),
                    redacted=True,
                )
                named_rank += 1

    # 2. The last error, if recent.
    error_count: int | None = None
    if "error" in sources:
        info = last_error(shell, redactor)
        recent = executed[-RECENT_ERROR_CELLS:]
        if info is not None and info.execution_count in recent:
            error_count = info.execution_count
            add(error_item(info, redactor), redacted=True)

    # 3. Data frames and series; 5. other variables (ranked by recent use).
    mentioned = _mention_order(inputs, executed)
    order = list(variables)
    definition_rank = {name: len(order) - i for i, name in enumerate(order)}
    ranked = sorted(order, key=lambda n: (mentioned.get(n, len(inputs) + 1), definition_rank[n]))
    frames = [n for n in ranked if is_frame_like(variables[n]) and f"var:{n}" not in taken]
    others = [n for n in ranked if not is_frame_like(variables[n])]
    full_frames, brief_frames = frames[:max_described_frames], frames[max_described_frames:]
    for rank, name in enumerate(full_frames):
        value = variables[name]
        text = describer(value, name, FRAME_CHARS)
        add(
            _var_item(KIND_DATAFRAME, name, value, text, priority_for(KIND_DATAFRAME, rank)),
            redacted=True,
        )

    # 4. Recent cells, newest first.
    if want_cells:
        recent_cells = [
            n for n in reversed(executed) if n != error_count and f"cell:{n}" not in taken
        ][:max_cells]
        for rank, count in enumerate(recent_cells):
            text = cell_text(shell, count, inputs[count], redactor, cell_output_chars)
            priority = priority_for(KIND_CELL, rank)
            add(
                ContextItem(KIND_CELL, f"cell:{count}", f"In[{count}]", text, priority, **_PYTHON),
                redacted=True,
            )

    # 5. Idle frames briefly, then other variables.
    for rank, name in enumerate(brief_frames):
        value = variables[name]
        text = describer(value, name, BRIEF_FRAME_CHARS, brief=True)
        add(
            _var_item(KIND_DATAFRAME, name, value, text, priority_for(KIND_VARIABLE, rank)),
            redacted=True,
        )
    left_over: list[str] = []
    described = 0
    for name in others:
        if f"var:{name}" in taken:
            continue
        value = variables[name]
        if described >= max_variables or describer.out_of_time():
            left_over.append(short_label(value, name))
            continue
        text = describer(value, name, VARIABLE_CHARS)
        priority = priority_for(KIND_VARIABLE, len(brief_frames) + described)
        add(_var_item(KIND_VARIABLE, name, value, text, priority), redacted=True)
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


# --------------------------------------------------------------------------------------------
# The scope, for inline completion


@dataclass
class KernelScope:
    """What inline completion knows of a kernel: its names, and its data frames' columns.

    ``names``: chip labels of the user's variables (``"sales · DataFrame 3×2"``) and of the
    modules imported under a name (``"pd · module pandas"``), most recently used first.
    ``frames``: per pandas / polars DataFrame, its one-line description (shape, then column
    names and dtypes: :func:`describe_brief`), so ``sales[`` can complete to a real column.
    Secret-named variables are left out and every text is redacted, as in :func:`collect`.
    """

    names: list[str]
    frames: dict[str, str]


def _is_data_frame(value: object) -> bool:
    return any(_is_lib_type(value, package, "DataFrame") for package in ("pandas", "polars"))


def kernel_scope(
    shell: Any,
    *,
    redactor: Redactor | None = None,
    max_names: int = 80,
    max_frames: int = 16,
    time_budget: float = 0.5,
    value_time_limit: float = 0.2,
) -> KernelScope:
    """The shell's :class:`KernelScope` (bounded: ``max_names`` labels, ``max_frames``
    frames described within ``time_budget`` seconds in all)."""
    redactor = _full_redactor(shell, redactor)
    describer = GuardedDescriber(
        redactor, time_budget=time_budget, value_time_limit=value_time_limit
    )
    inputs = raw_inputs(shell)
    mentioned = _mention_order(inputs, executed_counts(shell, inputs, 60))
    variables = user_variables(shell)
    newest = {name: -i for i, name in enumerate(variables)}  # later definitions first
    ranked = sorted(variables, key=lambda n: (mentioned.get(n, len(inputs) + 1), newest[n]))
    names = [redactor.redact(short_label(variables[n], n)) for n in ranked[:max_names]]
    frames: dict[str, str] = {}
    for name in [n for n in ranked if _is_data_frame(variables[n])][:max_frames]:
        if describer.out_of_time():  # the rest are named only
            break
        # Described with room to spare and redacted (the describer's redactor), then clipped:
        # a secret is never cut in two.
        text = describer(variables[name], name, 2 * BRIEF_FRAME_CHARS, brief=True)
        frames[name] = printable(clip(text, BRIEF_FRAME_CHARS))
    hidden = getattr(shell, "user_ns_hidden", {}) or {}
    for name, value in list(shell.user_ns.items()):
        if len(names) >= max_names:
            break
        if (
            isinstance(value, types.ModuleType)
            and isinstance(name, str)
            and not name.startswith("_")
            and hidden.get(name) is not value
        ):
            names.append(f"{name} · module {value.__name__}")
    return KernelScope(names, frames)
