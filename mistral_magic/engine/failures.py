"""Errors the notebook raised: remembering them, and the context that explains one.

Capture uses IPython's documented ``post_run_cell`` event and reads the error from the
``ExecutionResult`` (``error_in_exec``, or ``error_before_exec`` for SyntaxError and
IndentationError). IPython has already shown the traceback by then, exactly as it always does:
nothing here formats, replaces or delays it. :class:`ErrorLog` only remembers the exception
(for the last :data:`REMEMBERED_ERRORS` failing cells) and tells its listeners (the error
buttons, when ``Mistral.error_help`` is on; wired by :mod:`mistral_magic.extension`).

Not offered: KeyboardInterrupt, and errors of cells that invoke ``%mistral`` / ``%%mistral``
or raised inside mistral-magic itself.

The context of an explanation is built here: the failing line, the condensed traceback
(chained exceptions included), the failing cell's source, descriptions of the variables the
failing line names (the frame's locals first, then the notebook's), and the versions of the
packages whose frames are in the traceback. All of it is redacted, made valid UTF-8, and packed
to the context budget with the rest of the notebook context (:func:`error_items`).
"""

from __future__ import annotations

import builtins
import contextlib
import keyword
import linecache
import re
import sys
import types
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..context.items import KIND_ERROR, KIND_NAMED, ContextItem, priority_for

REMEMBERED_ERRORS = 8
FAILING_VARIABLE_CHARS = 1500
MAX_FAILING_VARIABLES = 8
MAX_PACKAGES = 12
VERSIONS_CHARS = 600
CELL_SOURCE_CHARS = 6000

#: Packages whose frames sit above the cell's own (IPython running the cell).
_SHELL_PACKAGES = frozenset({"IPython", "ipykernel"})

_MISTRAL_LINE = re.compile(
    r"^\s*(?:%%?mistral\b|get_ipython\(\)\.run_(?:cell|line)_magic\(\s*['\"]mistral['\"])",
    re.MULTILINE,
)
_IDENTIFIER = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")
# The mistral_magic package directory (this file is in its engine/ folder).
_PACKAGE_DIR = str(Path(__file__).parents[1])


@dataclass(frozen=True)
class CapturedError:
    """An exception shown under cell ``count``, with the cell's source as typed."""

    count: int | None
    error: BaseException
    source: str


def is_offered(error: BaseException | None, source: str) -> bool:
    """Whether an error gets help: not an interrupt, not from mistral-magic itself."""
    if error is None or isinstance(error, KeyboardInterrupt):
        return False
    if _MISTRAL_LINE.search(source or ""):
        return False
    return not _raised_inside_package(error)


def _raised_inside_package(error: BaseException) -> bool:
    tb = error.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    return last is not None and last.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR)


# --------------------------------------------------------------------------------------------
# Capture


OnError = Callable[[CapturedError], None]


class ErrorLog:
    """The failing cells of one shell (the newest :data:`REMEMBERED_ERRORS`), recorded by
    its ``post_run_cell`` hook; each new one is handed to the ``listeners``."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.errors: OrderedDict[int | None, CapturedError] = OrderedDict()
        self.listeners: list[OnError] = []
        self._installed = False

    def install(self) -> None:
        """Register the hook on the shell (idempotent)."""
        if not self._installed:
            self.shell.events.register("post_run_cell", self.post_run_cell)
            self._installed = True

    def uninstall(self) -> None:
        if self._installed:
            with contextlib.suppress(ValueError):
                self.shell.events.unregister("post_run_cell", self.post_run_cell)
            self._installed = False

    def post_run_cell(self, result: Any) -> None:
        error = getattr(result, "error_in_exec", None) or getattr(result, "error_before_exec", None)
        if error is None:
            return
        info = getattr(result, "info", None)
        source = getattr(info, "raw_cell", None) or ""
        if not is_offered(error, source):
            return
        count = getattr(result, "execution_count", None)
        captured = CapturedError(count, error, source)
        self.errors.pop(count, None)
        self.errors[count] = captured
        while len(self.errors) > REMEMBERED_ERRORS:
            self.errors.popitem(last=False)
        for listener in list(self.listeners):
            listener(captured)

    def find(self, count: int | None = None) -> CapturedError | None:
        """The error of cell ``count``, or the most recent one. Falls back on the error IPython
        last showed (``sys.last_value``) for errors from before the extension was loaded."""
        if count is not None and count in self.errors:
            return self.errors[count]
        if count is None and self.errors:
            return next(reversed(self.errors.values()))
        value = getattr(sys, "last_value", None)
        if not isinstance(value, BaseException):
            return None
        if any(value is c.error for c in self.errors.values()):
            return None  # a remembered error of another cell
        from ..context.errors import error_info

        info = error_info(self.shell, value)
        if info is None or (count is not None and info.execution_count != count):
            return None
        captured = CapturedError(info.execution_count, value, info.cell_source or "")
        return captured if is_offered(value, captured.source) else None


# --------------------------------------------------------------------------------------------
# The context of an error


def _frames(tb: types.TracebackType | None) -> list[types.TracebackType]:
    frames = []
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    return frames


def _chain(error: BaseException, limit: int = 8) -> list[BaseException]:
    """The error and the exceptions it was raised from / during, newest first."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain and len(chain) < limit:
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return chain


@dataclass(frozen=True)
class FailingLine:
    count: int | None
    lineno: int | None
    text: str
    frame: types.FrameType | None


def failing_line(shell: Any, captured: CapturedError) -> FailingLine | None:
    """The line of the user's own code where the error surfaced: the innermost frame in a
    notebook cell (not inside a library); for a SyntaxError, the line it points at."""
    from ..context.errors import cell_count_for_filename

    error = captured.error
    if isinstance(error, SyntaxError):
        text = (error.text or "").rstrip("\n")
        return FailingLine(captured.count, error.lineno, text, None)
    for tb in reversed(_frames(error.__traceback__)):
        count = cell_count_for_filename(shell, tb.tb_frame.f_code.co_filename)
        if count is None:
            continue
        lineno = tb.tb_lineno
        # IPython registers every cell's compiled source with linecache.
        text = linecache.getline(tb.tb_frame.f_code.co_filename, lineno)
        if not text and count == captured.count:
            lines = captured.source.splitlines()
            text = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
        return FailingLine(count, lineno, text.rstrip("\n"), tb.tb_frame)
    return None


def _named_values(shell: Any, line: FailingLine) -> dict[str, object]:
    """Values the failing line names: the frame's locals first, then the notebook's."""
    from ..context.redact import is_secret_name

    namespace = getattr(shell, "user_ns", {}) or {}
    local = line.frame.f_locals if line.frame is not None else {}
    found: dict[str, object] = {}
    missing = object()
    for name in _IDENTIFIER.findall(line.text):
        if name in found or keyword.iskeyword(name) or is_secret_name(name):
            continue
        value = local.get(name, missing) if local is not namespace else missing
        if value is missing:
            value = namespace.get(name, missing)
        if value is missing or _is_library_object(value):
            continue
        if value is getattr(builtins, name, missing):
            continue
        found[name] = value
        if len(found) >= MAX_FAILING_VARIABLES:
            break
    return found


def _is_library_object(value: object) -> bool:
    if isinstance(value, types.ModuleType):
        return True
    if isinstance(value, type) or callable(value):
        return getattr(value, "__module__", None) not in ("__main__", None)
    return False


def package_versions(error: BaseException) -> list[str]:
    """``name version`` of the packages whose code is in the traceback (chain included)."""
    from importlib import metadata

    names: list[str] = []
    for exc in _chain(error):
        modules = [tb.tb_frame.f_globals.get("__name__") or "" for tb in _frames(exc.__traceback__)]
        while modules and modules[0].split(".")[0] in _SHELL_PACKAGES:
            modules.pop(0)  # the shell running the cell, above the user's code
        candidates = [type(exc).__module__ or "", *modules]
        for module in candidates:
            top = module.split(".")[0]
            if top and top not in names and _is_package_name(top):
                names.append(top)
    found = []
    for top in names[:MAX_PACKAGES]:
        version = _version_of(top, metadata)
        if version:
            found.append(f"{top} {version}")
    return found


def _is_package_name(top: str) -> bool:
    """A third-party top-level module (not the standard library, not the notebook)."""
    return top not in sys.stdlib_module_names and top != "__main__" and not top.startswith("_")


def _version_of(top: str, metadata: Any) -> str | None:
    try:
        return metadata.version(top)
    except metadata.PackageNotFoundError:
        pass
    for dist in _distributions(metadata).get(top, []):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    module = sys.modules.get(top)
    version = getattr(module, "__version__", None)
    return version if isinstance(version, str) else None


_DISTRIBUTIONS: dict[str, list[str]] | None = None


def _distributions(metadata: Any) -> dict[str, list[str]]:
    global _DISTRIBUTIONS
    if _DISTRIBUTIONS is None:
        try:
            _DISTRIBUTIONS = dict(metadata.packages_distributions())
        except Exception:
            _DISTRIBUTIONS = {}
    return _DISTRIBUTIONS


def error_items(shell: Any, captured: CapturedError, redactor: Any = None) -> list[ContextItem]:
    """The context of one error, most important first (kept ahead of the notebook context)."""
    from ..context.describe import clip
    from ..context.errors import error_info
    from ..context.fit import fit
    from ..context.kernel import GuardedDescriber, shell_redactor

    redactor = shell_redactor(shell, redactor)
    info = error_info(shell, captured.error, redactor)
    count = captured.count if captured.count is not None else getattr(info, "execution_count", None)
    where = f" in In[{count}]" if count is not None else ""
    line = failing_line(shell, captured)

    def redacted(text: str, limit: int) -> str:
        return fit(text, 2 * limit, redactor)

    etype = info.etype if info else type(captured.error).__name__
    message = info.message if info else ""
    head = [f"{etype}{where}: {message}"]
    if line is not None and line.text.strip():
        at = f"In[{line.count}], line {line.lineno}" if line.count is not None else "the cell"
        head.append(f"Failing line ({at}):\n    {line.text.strip()}")
    if info is not None and info.traceback:
        head.append(f"Traceback (library frames condensed):\n{info.traceback}")
    label = f"error in [{count}]" if count is not None else "error"
    items = [
        ContextItem(
            KIND_ERROR, "error", label, redacted("\n".join(head), 8000), priority_for(KIND_NAMED, 0)
        )
    ]
    source = captured.source or (info.cell_source if info else "") or ""
    if source.strip():
        text = f"Source of the failing cell:\n```python\n{source.rstrip()}\n```"
        key = f"cell:{count}" if count is not None else "cell:failing"
        items.append(
            ContextItem(
                KIND_NAMED,
                key,
                f"In[{count}]",
                redacted(text, CELL_SOURCE_CHARS),
                priority_for(KIND_NAMED, 1),
            )
        )
    versions = package_versions(captured.error)
    python = f"Python {sys.version.split()[0]}"
    items.append(
        ContextItem(
            KIND_NAMED,
            "versions",
            "versions",
            clip("Versions: " + "; ".join([python, *versions]), VERSIONS_CHARS),
            priority_for(KIND_NAMED, 2),
        )
    )
    if line is not None:
        from ..context.describe import short_label

        describer = GuardedDescriber(redactor, time_budget=1.0, value_time_limit=0.5)
        for rank, (name, value) in enumerate(_named_values(shell, line).items(), start=3):
            text = describer(value, name, FAILING_VARIABLE_CHARS)
            items.append(
                ContextItem(
                    KIND_NAMED,
                    f"var:{name}",
                    short_label(value, name),
                    redacted(text, FAILING_VARIABLE_CHARS),
                    priority_for(KIND_NAMED, rank),
                )
            )
    return items
