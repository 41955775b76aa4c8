"""Context from notebook JSON (nbformat 4, as a front end sends it or as read from disk).

The server extension has no kernel to look into: it sees the notebook document. This module
turns that document into the same :class:`ContextItem` vocabulary as the kernel collector
(:mod:`mistral_magic.context.kernel`), with the same kinds, priority bands, labels and
redaction, so one packer and one prompt builder serve both:

* ``named``  the active cell (``"active cell [7]"``) and the user's selection in it;
* ``error``  the last error (``"error in [7]"``): ``ename``/``evalue``, the traceback with ANSI
  colours stripped, the failing cell's source (unless it is the active cell, shown already) and
  its execution count;
* ``cell``   the other cells with their text outputs (stream, ``text/plain`` results, errors),
  clipped, nearest to the active cell first.

Every item says it comes from the document (``origin``), not from the kernel's live state; code
is fenced in the notebook's language (its metadata: ``language_info`` or ``kernelspec``), which
the items carry for the prompt builder (:func:`~mistral_magic.context.items.code_language`).
One cell is one item with one label: ``In[7]`` when its execution count is its own, ``cell #12``
for a cell never run or whose count another cell shares (a copied cell keeps its count).
nbformat 3 (and older) documents are converted first.

Variables are not in the document; the front end gets them from the kernel (see
:mod:`mistral_magic.context.snapshot`) and the server adds them as ``dataframe``/``variable``
items. Nothing here does HTTP or talks to a kernel.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from mistral_magic.context.errors import ERROR_MESSAGE_CHARS, TRACEBACK_CHARS
from mistral_magic.context.fit import bound, bound_join, fit, strip_ansi
from mistral_magic.context.history import CELL_SOURCE_CHARS, is_mistral_invocation
from mistral_magic.context.items import (
    KIND_CELL,
    KIND_ERROR,
    KIND_NAMED,
    ORIGIN_NOTEBOOK,
    ContextItem,
    priority_for,
)
from mistral_magic.context.kernel import RECENT_ERROR_CELLS
from mistral_magic.context.redact import Redactor

#: Context sources a request may ask for.
SOURCES = ("cells", "active", "error")

MAX_CELLS = 40
CELL_OUTPUT_CHARS = 2000
SELECTION_CHARS = 4000
#: Of any text in the document, at most this much of its head and of its tail is read before
#: anything else happens to it (every later clip keeps far less): a 52 MB error value costs
#: what 128 kB do, on every request.
WORK_CHARS = 64_000


def _text(value: Any, *, tail: bool = True) -> str:
    """nbformat multiline strings are a str or a list of str; bounded to
    :data:`WORK_CHARS` at the head (and the tail) without joining what is not kept."""
    keep_tail = WORK_CHARS if tail else 0
    if isinstance(value, str):
        return bound(value, WORK_CHARS, keep_tail)
    if isinstance(value, list):
        parts = [part for part in value if isinstance(part, str)]
        return bound_join(parts, WORK_CHARS, keep_tail)
    return ""


class NotebookFormatError(ValueError):
    """A notebook document that cannot be read as nbformat 4; ``str()`` says why."""


def current_format(notebook: Mapping[str, Any]) -> Mapping[str, Any]:
    """``notebook`` as nbformat 4: older documents (``worksheets``, ``input``,
    ``prompt_number``…) are converted with nbformat; raises :class:`NotebookFormatError`."""
    major = notebook.get("nbformat")
    if major is None and "worksheets" in notebook:
        major = 3  # a v3 document sent without its version
    if not isinstance(major, int) or major >= 4:
        if "cells" in notebook or major in (None, 4):
            return notebook  # nbformat 4 (or a newer minor format: these fields are the same)
        raise NotebookFormatError(f"nbformat {major!r} is not a format mistral-magic can read")
    import nbformat

    try:
        return nbformat.convert(nbformat.from_dict(dict(notebook)), 4)
    except Exception as exc:  # nbformat's converters raise anything on malformed input
        raise NotebookFormatError(
            f"this nbformat {major} notebook could not be converted to nbformat 4 "
            f"({type(exc).__name__})"
        ) from None


_FENCE_NAMES = {"python3": "python", "ipython": "python", "ir": "r"}


def notebook_language(notebook: Mapping[str, Any]) -> str:
    """The language of the notebook's code, from its metadata (``"python"`` when unsaid)."""
    metadata = notebook.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    for field, key in (("language_info", "name"), ("kernelspec", "language")):
        section = metadata.get(field)
        name = section.get(key) if isinstance(section, Mapping) else None
        if isinstance(name, str) and name.strip():
            name = name.strip().lower()
            name = "".join(c for c in name if c.isalnum() or c in "+-#")[:30] or "python"
            return _FENCE_NAMES.get(name, name)
    return "python"


@dataclass(frozen=True)
class Cell:
    """One cell of the document, reduced to what context needs."""

    index: int
    cell_type: str
    source: str
    execution_count: int | None
    outputs: tuple[Mapping[str, Any], ...]
    language: str = "python"
    count_is_shared: bool = False  # another cell shows the same execution count

    @property
    def name(self) -> str:
        """``In[7]`` for a code cell that ran, else its position (``cell #3``, 1-based)."""
        if self.execution_count is not None and not self.count_is_shared:
            return f"In[{self.execution_count}]"
        kind = "markdown" if self.cell_type == "markdown" else "cell"
        return f"{kind} #{self.index + 1}"

    @property
    def key(self) -> str:
        if self.execution_count is not None and not self.count_is_shared:
            return f"cell:{self.execution_count}"
        return f"cell:#{self.index + 1}"

    def error_output(self) -> Mapping[str, Any] | None:
        for output in reversed(self.outputs):
            if output.get("output_type") == "error":
                return output
        return None


@dataclass(frozen=True)
class NotebookError:
    """The error shown in one cell of the document."""

    ename: str
    evalue: str
    traceback: str  # ANSI-free
    cell_source: str
    execution_count: int | None
    cell_index: int
    language: str = "python"
    cell_name: str = ""  # In[7], or cell #12


def cells_of(notebook: Mapping[str, Any]) -> list[Cell]:
    """The cells of an nbformat 4 dict (tolerant of missing fields)."""
    raw = notebook.get("cells") if isinstance(notebook, Mapping) else None
    language = notebook_language(notebook) if isinstance(notebook, Mapping) else "python"
    cells: list[Cell] = []
    for index, cell in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(cell, Mapping):
            continue
        count = cell.get("execution_count")
        outputs = cell.get("outputs")
        cells.append(
            Cell(
                index=index,
                cell_type=str(cell.get("cell_type") or "code"),
                source=_text(cell.get("source"), tail=False),
                execution_count=count if isinstance(count, int) and count > 0 else None,
                outputs=tuple(o for o in outputs if isinstance(o, Mapping))
                if isinstance(outputs, list)
                else (),
                language=language,
            )
        )
    counts = Counter(cell.execution_count for cell in cells if cell.execution_count is not None)
    return [replace(c, count_is_shared=counts[c.execution_count] > 1) for c in cells]


def _output_texts(cell: Cell) -> list[tuple[str, str]]:
    """(kind, text) of a cell's text outputs, in order: stdout/stderr, result, display, error."""
    found: list[tuple[str, str]] = []
    for output in cell.outputs:
        kind = output.get("output_type")
        if kind == "stream":
            name = "stderr" if output.get("name") == "stderr" else "stdout"
            found.append((name, _text(output.get("text"))))
        elif kind in ("execute_result", "display_data"):
            data = output.get("data")
            if isinstance(data, Mapping) and "text/plain" in data:
                label = "result" if kind == "execute_result" else "display"
                found.append((label, _text(data["text/plain"])))
        elif kind == "error":
            found.append(
                ("error", f"{_text(output.get('ename')) or 'Error'}: {_text(output.get('evalue'))}")
            )
    return found


def cell_text(cell: Cell, redactor: Redactor, output_chars: int = CELL_OUTPUT_CHARS) -> str:
    """A cell as the model sees it: the source in a fence, then its text outputs."""
    source = fit(cell.source, CELL_SOURCE_CHARS, redactor)
    if cell.cell_type == "markdown":
        return f"Markdown cell:\n{source.rstrip()}"
    if cell.cell_type == "raw":
        return f"Raw cell:\n{source.rstrip()}"
    parts = [f"```{cell.language}\n{source.rstrip()}\n```"]
    for kind, text in _output_texts(cell):
        text = fit(text, output_chars, redactor, middle=True).rstrip()
        if not text:
            continue
        if kind == "result" and cell.execution_count is not None:
            parts.append(f"Out[{cell.execution_count}]:\n{text}")
        else:
            parts.append(f"{kind}:\n{text}")
    return "\n".join(parts)


def find_error(
    cells: Sequence[Cell], *, cell_index: int | None = None, recent: int = RECENT_ERROR_CELLS
) -> NotebookError | None:
    """The error of cell ``cell_index`` if given; otherwise the newest error, if it is in one
    of the ``recent`` most recently executed cells (as the kernel collector decides)."""
    if cell_index is not None:
        candidates = [c for c in cells if c.index == cell_index]
    else:
        executed = sorted(
            (c for c in cells if c.execution_count is not None),
            key=lambda c: c.execution_count or 0,
        )
        candidates = list(reversed(executed[-recent:])) if recent > 0 else []
    for cell in candidates:
        output = cell.error_output()
        if output is None:
            continue
        traceback = output.get("traceback")
        lines = traceback if isinstance(traceback, list) else [traceback]
        lines = [line for line in lines if isinstance(line, str)]
        return NotebookError(
            ename=strip_ansi(_text(output.get("ename"), tail=False)[:200]) or "Error",
            evalue=strip_ansi(_text(output.get("evalue"))),
            traceback=strip_ansi(bound_join(lines, WORK_CHARS, WORK_CHARS, sep="\n")),
            cell_source=cell.source,
            execution_count=cell.execution_count,
            cell_index=cell.index,
            language=cell.language,
            cell_name=cell.name,
        )
    return None


def error_item(
    error: NotebookError, redactor: Redactor, *, source_shown_in: str | None = None
) -> ContextItem:
    """The error as an item, in the kernel collector's format and label. ``source_shown_in``:
    the label of another item that shows the failing cell (its source is not repeated)."""
    name = error.cell_name or (
        f"In[{error.execution_count}]" if error.execution_count is not None else ""
    )
    where = f" in {name}" if name else ""
    message = fit(error.evalue, ERROR_MESSAGE_CHARS, redactor)
    parts = [
        f"{error.ename}{where}: {message}",
        fit(error.traceback, TRACEBACK_CHARS, redactor, middle=True),
    ]
    if source_shown_in:
        parts.append(f"(The failing cell is the one shown as {source_shown_in}.)")
    elif error.cell_source.strip():
        source = fit(error.cell_source, CELL_SOURCE_CHARS, redactor).rstrip()
        parts.append(f"Source of the failing cell:\n```{error.language}\n{source}\n```")
    text = fit("\n".join(parts), ERROR_MESSAGE_CHARS + TRACEBACK_CHARS * 2, redactor)
    label = f"error in [{error.execution_count}]" if error.execution_count is not None else "error"
    return ContextItem(
        KIND_ERROR,
        "error",
        label,
        text,
        priority_for(KIND_ERROR),
        origin=ORIGIN_NOTEBOOK,
        language=error.language,
    )


def _is_context_cell(cell: Cell) -> bool:
    if not cell.source.strip():
        return False
    return not (cell.cell_type == "code" and is_mistral_invocation(cell.source))


def _active_label(cell: Cell) -> str:
    if cell.execution_count is not None and not cell.count_is_shared:
        return f"active cell [{cell.execution_count}]"
    return f"active cell #{cell.index + 1}"


def collect_notebook(
    notebook: Mapping[str, Any],
    *,
    active_cell: int | None = None,
    selection: str = "",
    error_cell: int | None = None,
    sources: Collection[str] = SOURCES,
    redactor: Redactor | None = None,
    max_cells: int = MAX_CELLS,
    cell_output_chars: int = CELL_OUTPUT_CHARS,
) -> list[ContextItem]:
    """Context items from a notebook document, most important first.

    ``active_cell`` / ``error_cell`` are cell indexes in ``notebook["cells"]``; ``error_cell``
    names the cell whose error the user asked about (Explain / Fix) and makes that error the
    error item even when it is not recent. ``sources``: any of ``"active"`` (active cell and
    selection), ``"error"``, ``"cells"``. All text is redacted with ``redactor`` plus the
    values of secret-named environment variables. A document that cannot be read gives one
    item saying so (its label shows on the sidebar's chip), never an empty context in silence.
    """
    redactor = Redactor.from_environment(redactor.secrets if redactor is not None else ())
    try:
        notebook = current_format(notebook)
    except NotebookFormatError as exc:
        note = f"The notebook could not be read: {exc}. Its cells are not included."
        return [
            ContextItem(
                KIND_NAMED,
                "unreadable",
                "notebook unreadable",
                note,
                priority_for(KIND_NAMED),
                origin=ORIGIN_NOTEBOOK,
            )
        ]
    cells = cells_of(notebook)
    by_index = {cell.index: cell for cell in cells}
    active = by_index.get(active_cell) if active_cell is not None else None
    items: list[ContextItem] = []
    taken: set[int] = set()

    if "active" in sources and active is not None:
        named_rank = 0
        if selection.strip() and selection.strip() != active.source.strip():
            text = fit(selection, SELECTION_CHARS, redactor)
            labelled = _active_label(active).removeprefix("active cell")
            items.append(
                ContextItem(
                    KIND_NAMED,
                    "selection",
                    f"selection in{labelled}",
                    f"The user selected this part of the active cell:\n"
                    f"```{active.language}\n{text.rstrip()}\n```",
                    priority_for(KIND_NAMED, named_rank),
                    origin=ORIGIN_NOTEBOOK,
                    language=active.language,
                )
            )
            named_rank += 1
        if _is_context_cell(active):
            items.append(
                ContextItem(
                    KIND_NAMED,
                    "active",
                    _active_label(active),
                    "The cell the user is working on:\n"
                    + cell_text(active, redactor, cell_output_chars * 2),
                    priority_for(KIND_NAMED, named_rank),
                    origin=ORIGIN_NOTEBOOK,
                    language=active.language,
                )
            )
            taken.add(active.index)

    if "error" in sources or error_cell is not None:
        error = find_error(cells, cell_index=error_cell)
        if error is not None:
            shown = _active_label(active) if active and active.index in taken else None
            in_active = shown is not None and error.cell_index == active.index
            items.append(error_item(error, redactor, source_shown_in=shown if in_active else None))
            taken.add(error.cell_index)

    if "cells" in sources:
        anchor = active.index if active is not None else len(cells)
        ranked = sorted(
            (c for c in cells if c.index not in taken and _is_context_cell(c)),
            # nearest first; cells above the active one before cells below it
            key=lambda c: abs(anchor - c.index) + (0 if c.index < anchor else 0.5),
        )
        for rank, cell in enumerate(ranked[:max_cells]):
            items.append(
                ContextItem(
                    KIND_CELL,
                    cell.key,
                    cell.name,
                    cell_text(cell, redactor, cell_output_chars),
                    priority_for(KIND_CELL, rank),
                    origin=ORIGIN_NOTEBOOK,
                    language=cell.language,
                )
            )

    items.sort(key=lambda item: item.priority)
    return items


def variable_items(
    raw: Sequence[Mapping[str, Any]], redactor: Redactor, *, max_items: int = 60
) -> list[ContextItem]:
    """Variable items sent back by the front end (from :func:`snapshot.kernel_items`).

    They crossed the browser, so they are checked again: only ``dataframe``/``variable``
    kinds, labels and texts clipped and redacted, priorities recomputed from their order.
    """
    from mistral_magic.context.items import KIND_DATAFRAME, KIND_VARIABLE
    from mistral_magic.context.redact import is_secret_name

    ranks = {KIND_DATAFRAME: 0, KIND_VARIABLE: 0}
    items: list[ContextItem] = []
    seen: set[str] = set()
    for entry in raw[:max_items]:
        if not isinstance(entry, Mapping):
            continue
        kind = entry.get("kind")
        key = str(entry.get("key") or "")
        if kind not in ranks or not key.startswith("var") or key in seen:
            continue
        if key.startswith("var:") and is_secret_name(key[4:]):
            continue
        seen.add(key)
        label = fit(str(entry.get("label") or key), 120, redactor)
        text = fit(str(entry.get("text") or ""), 4000, redactor)
        items.append(ContextItem(kind, key, label, text, priority_for(kind, ranks[kind])))
        ranks[kind] += 1
    return items
