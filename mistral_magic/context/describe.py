"""Describers: a short, bounded text for any value in the user's namespace.

Costs are bounded by design, independent of data size:

* pandas / polars frames use ``.shape``, ``.dtypes``/``.schema``, ``.head(n)`` and
  null counts on the first :data:`NULL_SAMPLE_ROWS` rows only (the text says so when the
  frame is longer); memory is the shallow size (never ``deep=True``); at most
  :data:`MAX_COLUMNS_LISTED` columns are listed and :data:`SAMPLE_ROWS` rows shown, with long
  cells clipped.
* numpy arrays use ``shape``/``dtype``/``nbytes`` and numpy's own summarised printing.
* builtin containers are walked for at most a few items per level and a few levels deep;
  huge ints, strings and bytes are summarised, never fully converted.
* anything else is shown by its ``repr`` (the only user code a describer may run), clipped.

Libraries are recognised by ``type(value).__mro__`` module / class names, so nothing heavy
is imported here: pandas, numpy or polars are only touched when the value already is one of
theirs. :func:`describe` never raises: a failing describer yields
``"<name>: <Type> <could not describe: ErrorType>"``. Wall-clock bounds for runaway ``repr``
implementations live in :mod:`mistral_magic.context.guard` and are applied by the collector.

Secrets: every piece of a value's text (a table cell, a string's head, a container item, a
``repr``) is redacted *before* it is clipped, with the redactor given to :func:`describe`
(see :func:`mistral_magic.context.fit.fit`): a key in a DataFrame cell is never sent cut to
the cell's width, where it would no longer be recognised.
"""

from __future__ import annotations

import datetime
import inspect
import itertools
import math
import numbers
import types
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from mistral_magic.context.fit import (
    ELLIPSIS,
    clean_text,
    clip,
    fit,
    name_inline_data,
    one_line,
    redact_bounded,
)

if TYPE_CHECKING:
    from mistral_magic.context.redact import Redactor

#: Null counts are computed on at most this many leading rows.
NULL_SAMPLE_ROWS = 10_000
SAMPLE_ROWS = 3
SERIES_SAMPLE_VALUES = 5
MAX_COLUMNS_LISTED = 40
SAMPLE_COLUMNS = 12
CELL_CHARS = 24
CONTAINER_ITEMS = 8
CONTAINER_DEPTH = 3
STRING_PREVIEW_CHARS = 200
BIG_INT_BITS = 4_000

# The redactor of the describe call in progress: the describers below pass it to every clip
# of a value's text without threading it through each signature. A context variable, so
# describes on other threads keep their own.
_redactor: ContextVar[Redactor | None] = ContextVar("mistral_magic_describe_redactor", default=None)


@contextmanager
def _redacting(redactor: Redactor | None) -> Iterator[None]:
    if redactor is None:
        yield
        return
    token = _redactor.set(redactor)
    try:
        yield
    finally:
        _redactor.reset(token)


def _fit(text: str, max_chars: int, clean: Callable[[str], str] = clean_text) -> str:
    """A value's text, redacted, then clipped (see the module doc)."""
    return fit(text, max_chars, _redactor.get(), clean=clean)


# --------------------------------------------------------------------------------------------
# Small helpers


def _mro_names(value: object) -> Iterable[tuple[str, str]]:
    for cls in type(value).__mro__:
        yield getattr(cls, "__module__", "") or "", cls.__name__


def _is_lib_type(value: object, package: str, class_name: str) -> bool:
    """Whether ``value`` is an instance of ``package``'s ``class_name`` (or a subclass)."""
    prefix = package + "."
    return any(
        name == class_name and (module == package or module.startswith(prefix))
        for module, name in _mro_names(value)
    )


def type_name(value: object) -> str:
    """``Foo`` for builtins and ``__main__``; ``module.Foo`` otherwise."""
    cls = type(value)
    module = getattr(cls, "__module__", "") or ""
    if module in ("builtins", "__main__", ""):
        return cls.__name__
    return f"{module.split('.')[0]}.{cls.__name__}"


_DTYPE_TEXT: dict[object, str] = {}


def _dtype_text(dtype: object) -> str:
    """``str(dtype)``, cached: numpy's dtype ``__str__`` is Python code and adds up."""
    try:
        text = _DTYPE_TEXT.get(dtype)
    except TypeError:  # unhashable
        return str(dtype)
    if text is None:
        text = str(dtype)
        if len(_DTYPE_TEXT) < 1000:
            _DTYPE_TEXT[dtype] = text
    return text


def _human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _holds_no_text(value: object) -> bool:
    """Numbers, booleans, dates and missing values: nothing a secret could be in."""
    if value is None or isinstance(value, (numbers.Number, datetime.date, datetime.timedelta)):
        return True
    return type(value).__name__ in ("bool_", "datetime64", "timedelta64", "NaTType", "NAType")


def _cell_text(value: object, width: int = CELL_CHARS) -> str:
    """One table cell: compact, single-line, redacted, clipped."""
    if isinstance(value, float):
        return _float_text(value)
    if _holds_no_text(value):
        return clip(str(value), width)
    if isinstance(value, str):
        text = value
    else:
        text = bounded_repr(value, width * 2) if not _is_scalar_like(value) else str(value)
    return _fit(text, width, clean=one_line)


def _float_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    text = f"{value:.6g}"
    return text if any(c in text for c in ".enai") else text + ".0"


def _is_scalar_like(value: object) -> bool:
    module = type(value).__module__ or ""
    return isinstance(value, (int, bool, type(None))) or module.startswith(("numpy", "pandas"))


def _table(header: list[str], rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [len(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [header, *rows]:
        lines.append(
            indent + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        )
    return lines


# --------------------------------------------------------------------------------------------
# Bounded repr for builtins and nested values


def _summary_for_nested(value: object) -> str | None:
    """A one-word summary for big library objects met inside containers."""
    if _is_lib_type(value, "pandas", "DataFrame") or _is_lib_type(value, "polars", "DataFrame"):
        rows, cols = value.shape  # type: ignore[attr-defined]
        return f"<DataFrame {rows:,}×{cols:,}>"
    if _is_lib_type(value, "pandas", "Series") or _is_lib_type(value, "polars", "Series"):
        return f"<Series {value.dtype} ({len(value):,})>"  # type: ignore[attr-defined, arg-type]
    if _is_lib_type(value, "numpy", "ndarray") and value.size > CONTAINER_ITEMS:  # type: ignore[attr-defined]
        return f"<ndarray {value.dtype} {value.shape}>"  # type: ignore[attr-defined]
    return None


def bounded_repr(
    value: object, max_chars: int = 300, _depth: int = 0, *, redactor: Redactor | None = None
) -> str:
    """Like ``repr`` but with bounded work for builtin types; clipped to ``max_chars``.

    Containers show at most :data:`CONTAINER_ITEMS` items per level and
    :data:`CONTAINER_DEPTH` levels; other objects use their own ``repr``. With a
    ``redactor`` (or inside :func:`describe`), secrets are redacted before anything is clipped.
    """
    with _redacting(redactor):
        return _fit(_bounded_repr(value, max_chars, _depth), max_chars, clean=name_inline_data)


def _bounded_repr(value: object, max_chars: int, depth: int) -> str:
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        if value.bit_length() > BIG_INT_BITS:
            digits = int(value.bit_length() * math.log10(2)) + 1
            return f"<int with about {digits:,} digits>"
        return repr(value)
    if isinstance(value, str):
        # Redacted before the head is taken: a secret cut at max_chars would not be found.
        shown = redact_bounded(value, _redactor.get(), head=max_chars + 2, clean=name_inline_data)
        head = shown[: max_chars + 2]
        text = repr(head)
        return text if len(head) == len(value) else text + ELLIPSIS
    if isinstance(value, (bytes, bytearray)):
        # Well beyond what is kept: the caller's redaction sees any secret near the edge whole.
        head = value[: 2 * max_chars + 1024]
        text = repr(head)
        return text if len(head) == len(value) else text + ELLIPSIS
    if isinstance(value, (float, complex)):
        return repr(value)
    summary = _summary_for_nested(value) if depth > 0 else None
    if summary is not None:
        return summary
    if isinstance(value, dict):
        return _container_repr(value, "{", "}", depth, max_chars, _dict_items(value))
    if isinstance(value, list):
        return _container_repr(value, "[", "]", depth, max_chars, iter(value))
    if isinstance(value, tuple) and type(value).__repr__ is tuple.__repr__:
        closing = ",)" if len(value) == 1 else ")"
        return _container_repr(value, "(", closing, depth, max_chars, iter(value))
    if isinstance(value, (set, frozenset)):
        if not value:
            return f"{type(value).__name__}()"
        return _container_repr(value, "{", "}", depth, max_chars, iter(value))
    return repr(value)


def _dict_items(mapping: dict) -> Iterable[tuple[object, object]]:
    return iter(dict.items(mapping))


def _container_repr(
    container: Any, opening: str, closing: str, depth: int, max_chars: int, items: Iterable
) -> str:
    if depth >= CONTAINER_DEPTH:
        return f"{opening}{ELLIPSIS}{closing}" if len(container) else f"{opening}{closing}"
    parts: list[str] = []
    used = 0
    child_chars = max(20, max_chars // 2)
    for item in itertools.islice(items, CONTAINER_ITEMS):
        if isinstance(item, tuple) and opening == "{" and isinstance(container, dict):
            key, val = item
            part = (
                f"{_bounded_repr(key, child_chars, depth + 1)}: "
                f"{_bounded_repr(val, child_chars, depth + 1)}"
            )
        else:
            part = _bounded_repr(item, child_chars, depth + 1)
        part = _fit(part, child_chars, clean=name_inline_data)
        parts.append(part)
        used += len(part) + 2
        if used > max_chars:
            break
    if len(parts) < len(container):
        parts.append(ELLIPSIS)
    text = opening + ", ".join(parts) + closing
    cls = type(container)
    if cls not in (dict, list, tuple, set, frozenset):
        text = f"{cls.__name__}({text})"
    return text


# --------------------------------------------------------------------------------------------
# pandas


def _pandas_index_summary(index: Any) -> str:
    kind = type(index).__name__
    length = len(index)
    if kind == "RangeIndex":
        step = f", step {index.step}" if index.step != 1 else ""
        return (
            f"RangeIndex {index.start}..{index.stop - index.step}{step}"
            if length
            else "RangeIndex (empty)"
        )
    names = [n for n in getattr(index, "names", []) if n is not None]
    named = f" named {', '.join(map(str, names))}" if names else ""
    if kind == "MultiIndex":
        return f"MultiIndex with {index.nlevels} levels{named}"
    if length == 0:
        return f"{kind}{named} (empty)"
    first, last = _cell_text(index[0], 32), _cell_text(index[-1], 32)
    return f"{kind}{named}, dtype {index.dtype}, from {first} to {last}"


def _shallow_frame_bytes(frame: Any, dtypes: list[Any]) -> int:
    """Same figure as ``frame.memory_usage(deep=False).sum()`` with O(columns) work."""
    rows = frame.shape[0]
    total = int(frame.index.memory_usage(deep=False))
    for position, dtype in enumerate(dtypes):
        itemsize = getattr(dtype, "itemsize", None)
        if type(dtype).__module__.startswith("numpy") and itemsize is not None:
            total += rows * int(itemsize)
        else:  # extension arrays know their own (shallow) size
            total += int(frame.iloc[:, position].array.nbytes)
    return total


def _pandas_null_counts(frame: Any, columns: int) -> tuple[list[int], int]:
    """Null counts of the first ``columns`` columns over at most NULL_SAMPLE_ROWS rows."""
    rows_used = min(frame.shape[0], NULL_SAMPLE_ROWS)
    # iloc slices are views; DataFrame.head() copies the rows (pandas 3).
    head = frame.iloc[:rows_used]
    if frame.shape[1] > columns:
        head = head.iloc[:, :columns]
    counts = head.isna().to_numpy().sum(axis=0).tolist()
    return [int(c) for c in counts], rows_used


def _sample_lines(header: list[str], rows: list[tuple | list], max_line: int = 160) -> list[str]:
    cells = [[_cell_text(v) for v in row] for row in rows]
    lines = _table([_fit(h, CELL_CHARS, clean=one_line) for h in header], cells)
    return [clip(line, max_line) for line in lines]


def _describe_pandas_frame(frame: Any, name: str, max_chars: int) -> str:
    rows, cols = frame.shape
    kind = type(frame).__name__
    lines = [f"{name}: pandas {kind}, {_plural(rows, 'row')} × {_plural(cols, 'column')}"]
    lines.append(f"index: {_pandas_index_summary(frame.index)}")
    listed = min(cols, MAX_COLUMNS_LISTED)
    dtypes = list(frame.dtypes)
    column_names = [str(c) for c in frame.columns[:listed]]
    if listed:
        nulls, rows_used = _pandas_null_counts(frame, listed)
        columns = list(zip(column_names, dtypes[:listed], nulls, strict=True))
        lines += _columns_table(columns, rows, rows_used, cols)
    lines.append(f"memory: {_human_bytes(_shallow_frame_bytes(frame, dtypes))} (shallow)")
    shown_rows = min(rows, SAMPLE_ROWS)
    if shown_rows and cols:
        shown_cols = min(cols, SAMPLE_COLUMNS)
        head = frame.iloc[:shown_rows, :shown_cols]
        values = head.to_numpy(dtype=object).tolist()
        index_cells = [_cell_text(i, 16) for i in head.index]
        sample = [[idx, *row] for idx, row in zip(index_cells, values, strict=True)]
        more = f" (first {shown_cols} of {cols} columns)" if shown_cols < cols else ""
        lines.append(f"first {shown_rows} rows{more}:")
        lines.extend(_sample_lines(["", *column_names[:shown_cols]], sample))
    return "\n".join(lines)


def _columns_table(
    columns: list[tuple[str, Any, int]], rows: int, rows_used: int, total_columns: int
) -> list[str]:
    """The "columns:" table of a frame: (name, dtype, null count) per listed column."""
    null_header = "nulls" if rows_used == rows else f"nulls in first {rows_used:,} rows"
    table_rows = [
        [_fit(name, 40, clean=one_line), _dtype_text(dtype), f"{nulls:,}"]
        for name, dtype, nulls in columns
    ]
    lines = ["columns:", *_table(["name", "dtype", null_header], table_rows)]
    if total_columns > len(columns):
        lines.append(f"  {ELLIPSIS} {total_columns - len(columns):,} more columns")
    return lines


def _describe_pandas_series(series: Any, name: str, max_chars: int) -> str:
    length = len(series)
    label = f" {bounded_repr(series.name, 40)}" if series.name is not None else ""
    lines = [f"{name}: pandas Series{label}, {_plural(length, 'value')}, dtype {series.dtype}"]
    lines.append(f"index: {_pandas_index_summary(series.index)}")
    rows_used = min(length, NULL_SAMPLE_ROWS)
    nulls = int(series.iloc[:rows_used].isna().sum())
    where = "" if rows_used == length else f" in first {rows_used:,}"
    lines.append(f"nulls{where}: {nulls:,}")
    memory = int(series.memory_usage(index=True, deep=False))
    lines.append(f"memory: {_human_bytes(memory)} (shallow)")
    head = series.iloc[:SERIES_SAMPLE_VALUES]
    pairs = [
        f"{_cell_text(i, 16)}: {_cell_text(v)}"
        for i, v in zip(head.index, head.tolist(), strict=True)
    ]
    if pairs:
        lines.append(f"first {len(pairs)}: " + ", ".join(pairs))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# polars


def _describe_polars_frame(frame: Any, name: str, max_chars: int) -> str:
    rows, cols = frame.shape
    lines = [f"{name}: polars DataFrame, {_plural(rows, 'row')} × {_plural(cols, 'column')}"]
    listed = min(cols, MAX_COLUMNS_LISTED)
    schema = list(frame.schema.items())[:listed]
    if listed:
        rows_used = min(rows, NULL_SAMPLE_ROWS)
        sample = frame.head(rows_used)
        columns = [
            (str(col), dtype, int(sample.get_column(col).null_count())) for col, dtype in schema
        ]
        lines += _columns_table(columns, rows, rows_used, cols)
    lines.append(f"memory: {_human_bytes(frame.estimated_size())} (estimated)")
    shown_rows = min(rows, SAMPLE_ROWS)
    if shown_rows and cols:
        shown_cols = min(cols, SAMPLE_COLUMNS)
        head = frame.head(shown_rows).select(frame.columns[:shown_cols])
        more = f" (first {shown_cols} of {cols} columns)" if shown_cols < cols else ""
        lines.append(f"first {shown_rows} rows{more}:")
        lines.extend(_sample_lines([str(c) for c in head.columns], head.rows()))
    return "\n".join(lines)


def _describe_polars_series(series: Any, name: str, max_chars: int) -> str:
    length = len(series)
    lines = [
        f"{name}: polars Series {series.name!r}, {_plural(length, 'value')}, dtype {series.dtype}"
    ]
    rows_used = min(length, NULL_SAMPLE_ROWS)
    nulls = int(series.head(rows_used).null_count())
    where = "" if rows_used == length else f" in first {rows_used:,}"
    lines.append(f"nulls{where}: {nulls:,}")
    values = series.head(SERIES_SAMPLE_VALUES).to_list()
    if values:
        lines.append(f"first {len(values)}: " + ", ".join(_cell_text(v) for v in values))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# numpy


def _describe_ndarray(array: Any, name: str, max_chars: int) -> str:
    import numpy  # already imported: the value is a numpy array

    head = (
        f"{name}: numpy {type(array).__name__} {array.dtype}, shape {tuple(array.shape)}, "
        f"{_human_bytes(array.nbytes)}"
    )
    body = numpy.array2string(
        array,
        max_line_width=100,
        precision=6,
        threshold=40,
        edgeitems=3,
        separator=", ",
    )
    return head + "\n" + _fit(body, max(80, max_chars - len(head) - 1))


# --------------------------------------------------------------------------------------------
# builtins and the rest


def _describe_str(text: str, name: str, max_chars: int) -> str:
    lines = text.count("\n", 0, 100_000) + 1 if len(text) <= 100_000 else None
    line_note = f", {_plural(lines, 'line')}" if lines and lines > 1 else ""
    head = f"{name}: str ({len(text):,} chars{line_note})"
    return head + "\n" + bounded_repr(text, max(STRING_PREVIEW_CHARS, max_chars - len(head) - 1))


def _describe_container(value: Any, name: str, max_chars: int) -> str:
    head = f"{name}: {_container_summary(value)}"
    return head + "\n" + bounded_repr(value, max(80, max_chars - len(head) - 1))


def _container_summary(value: Any) -> str:
    kind = type(value).__name__
    if isinstance(value, dict):
        return f"{kind} ({_plural(len(value), 'key')})"
    return f"{kind} ({_plural(len(value), 'item')})"


def _signature(func: Callable) -> str:
    try:
        return str(inspect.signature(func))
    except (TypeError, ValueError):
        return "(…)"


def _first_doc_line(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    return clip(doc.strip().splitlines()[0], 160) if doc.strip() else ""


def _describe_function(func: Any, name: str, max_chars: int) -> str:
    kind = "async function" if inspect.iscoroutinefunction(func) else "function"
    text = f"{name}: {kind} {func.__name__}{_signature(func)}"
    doc = _first_doc_line(func)
    return text + (f"\n  {doc}" if doc else "")


def _describe_class(cls: type, name: str, max_chars: int) -> str:
    bases = [b.__name__ for b in cls.__bases__ if b is not object]
    text = f"{name}: class {cls.__name__}" + (f"({', '.join(bases)})" if bases else "")
    init = cls.__dict__.get("__init__")
    if init is not None:
        parameters = _signature(init).replace("(self, ", "(").replace("(self)", "()")
        text += f", constructor {cls.__name__}{parameters}"
    doc = _first_doc_line(cls) if cls.__doc__ else ""
    methods = [m for m in cls.__dict__ if not m.startswith("_") and callable(cls.__dict__[m])]
    if doc:
        text += f"\n  {doc}"
    if methods:
        text += "\n  methods: " + clip(", ".join(methods), 300)
    return text


def _describe_scalar(value: Any, name: str, max_chars: int) -> str:
    return f"{name}: {type_name(value)} = {bounded_repr(value, max_chars)}"


def _describe_other(value: Any, name: str, max_chars: int) -> str:
    head = f"{name}: {type_name(value)}"
    text = repr(value)
    if type(value).__repr__ is object.__repr__:
        attributes = _public_attributes(value)
        if attributes:
            text = "attributes: " + attributes
    return head + "\n" + _fit(text, max(80, max_chars - len(head) - 1))


def _public_attributes(value: object) -> str:
    try:
        namespace = object.__getattribute__(value, "__dict__")
    except AttributeError:
        return ""
    if not isinstance(namespace, dict):
        return ""
    pairs = [
        f"{key}={bounded_repr(val, 60)}"
        for key, val in itertools.islice(dict.items(namespace), 20)
        if isinstance(key, str) and not key.startswith("_")
    ]
    return ", ".join(pairs[: CONTAINER_ITEMS * 2])


_Describer = Callable[[Any, str, int], str]


def _describer_for(value: object) -> _Describer:
    if _is_lib_type(value, "pandas", "DataFrame"):
        return _describe_pandas_frame
    if _is_lib_type(value, "pandas", "Series"):
        return _describe_pandas_series
    if _is_lib_type(value, "polars", "DataFrame"):
        return _describe_polars_frame
    if _is_lib_type(value, "polars", "Series"):
        return _describe_polars_series
    if _is_lib_type(value, "numpy", "ndarray"):
        return _describe_ndarray
    if isinstance(value, str):
        return _describe_str
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        return _describe_container
    if isinstance(value, (int, float, complex, bool, bytes, bytearray, type(None))):
        return _describe_scalar
    if isinstance(value, (types.FunctionType, types.MethodType, types.BuiltinFunctionType)):
        return _describe_function
    if isinstance(value, type):
        return _describe_class
    return _describe_other


def runs_user_code(value: object) -> bool:
    """Whether describing ``value`` may call user-defined ``__repr__`` code."""
    describer = _describer_for(value)
    return describer in (_describe_other, _describe_container)


def describe(
    value: object, name: str, *, max_chars: int = 1500, redactor: Redactor | None = None
) -> str:
    """Text for the model about ``value`` bound to ``name``; starts with ``name`` and its type.

    Never raises (except for BaseExceptions like KeyboardInterrupt); the result is at most
    ``max_chars`` characters. Every piece of the value's text is redacted with ``redactor``
    before it is clipped (without one, only bounded and cleaned: the caller then redacts).
    """
    with _redacting(redactor):
        try:
            text = _describer_for(value)(value, name, max_chars)
        except Exception as exc:
            text = could_not_describe(value, name, type(exc).__name__)
        return _fit(text, max_chars)


def describe_brief(
    value: object, name: str, *, max_chars: int = 400, redactor: Redactor | None = None
) -> str:
    """A one-paragraph description: for frames only shape and column dtypes (no sampling)."""
    with _redacting(redactor):
        try:
            if _is_lib_type(value, "pandas", "DataFrame") or _is_lib_type(
                value, "polars", "DataFrame"
            ):
                text = _brief_frame(value, name)
            else:
                text = describe(value, name, max_chars=max_chars)
        except Exception as exc:
            text = could_not_describe(value, name, type(exc).__name__)
        return _fit(text, max_chars)


def _brief_frame(frame: Any, name: str) -> str:
    rows, cols = frame.shape
    library = "polars" if _is_lib_type(frame, "polars", "DataFrame") else "pandas"
    if library == "polars":
        pairs = list(itertools.islice(frame.schema.items(), MAX_COLUMNS_LISTED))
    else:
        names = frame.columns[:MAX_COLUMNS_LISTED].tolist()
        pairs = list(zip(names, frame.dtypes.tolist()[: len(names)], strict=True))
    listing = ", ".join(
        f"{_fit(str(col), 40, clean=one_line)} ({_dtype_text(dtype)})" for col, dtype in pairs
    )
    more = f", {ELLIPSIS} {cols - len(pairs):,} more" if cols > len(pairs) else ""
    return (
        f"{name}: {library} DataFrame, {_plural(rows, 'row')} × {_plural(cols, 'column')}; "
        f"columns: {listing}{more}"
    )


def could_not_describe(value: object, name: str, reason: str) -> str:
    return f"{name}: {type_name(value)} <could not describe: {reason}>"


# --------------------------------------------------------------------------------------------
# Chip labels


def _shape_text(shape: tuple) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


def short_label(value: object, name: str) -> str:
    """A chip label: ``"sales · DataFrame 120,000×8"``, ``"config · dict (12 keys)"``."""
    try:
        return f"{name} · {_label_summary(value)}"
    except Exception:
        return f"{name} · {type(value).__name__}"


def _label_summary(value: object) -> str:
    if _is_lib_type(value, "pandas", "DataFrame"):
        rows, cols = value.shape  # type: ignore[attr-defined]
        return f"DataFrame {rows:,}×{cols:,}"
    if _is_lib_type(value, "pandas", "Series"):
        return f"Series {value.dtype} ({len(value):,})"  # type: ignore[attr-defined, arg-type]
    if _is_lib_type(value, "polars", "DataFrame"):
        rows, cols = value.shape  # type: ignore[attr-defined]
        return f"polars DataFrame {rows:,}×{cols:,}"
    if _is_lib_type(value, "polars", "Series"):
        return f"polars Series {value.dtype} ({len(value):,})"  # type: ignore[attr-defined, arg-type]
    if _is_lib_type(value, "numpy", "ndarray"):
        return f"ndarray {value.dtype} {_shape_text(value.shape)}"  # type: ignore[attr-defined]
    if isinstance(value, str):
        return f"str ({len(value):,} chars)"
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        return _container_summary(value)
    if isinstance(value, (types.FunctionType, types.MethodType, types.BuiltinFunctionType)):
        return "function"
    if isinstance(value, type):
        return "class"
    return type(value).__name__
