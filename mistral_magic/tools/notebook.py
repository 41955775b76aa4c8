"""The built-in, read-only notebook tools: the model looks into the live kernel on demand.

They reuse the context engine's pieces (``context.kernel`` / ``context.describe``), so a tool
sees exactly what the up-front context would: the same describers and caps, secret-named
variables never shown, every text through the same redactor (the configured key, secret-named
environment variables and user variables, credential patterns). Slow values are cut off by
the same per-value time limit.
"""

from __future__ import annotations

import difflib
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from ..context.describe import clip, short_label
from ..context.errors import error_item, last_error
from ..context.guard import DescribeTimeout, time_limit
from ..context.history import (
    ANSI,
    cell_text,
    executed_counts,
    history_outputs,
    raw_inputs,
    running_count,
)
from ..context.kernel import NAMED_CHARS, is_frame_like, shell_redactor, user_variables
from ..context.redact import is_secret_name
from .core import BUILTIN_NAMES, Tool

if TYPE_CHECKING:
    from ..context.redact import Redactor

MAX_LISTED_VARIABLES = 200
MAX_HEAD_ROWS = 50
MAX_SEARCH_HITS = 20
SEARCH_LINE_CHARS = 200
CELL_OUTPUT_CHARS = 4000
VALUE_TIME_LIMIT = 5.0  # seconds for one statistic / head of a slow value


def tool_redactor(shell: Any, base: Redactor | None) -> Redactor:
    """What every tool result goes through: ``base`` plus secret-named environment variables
    and, with a shell, the values of secret-named user variables."""
    if shell is not None and hasattr(shell, "user_ns"):
        return shell_redactor(shell, base)
    from ..context.redact import Redactor

    return Redactor.from_environment(base.secrets if base is not None else ())


class NotebookTools:
    """The built-in tools bound to one IPython shell."""

    def __init__(self, shell: Any, redactor: Redactor | None = None) -> None:
        self.shell = shell
        self.base_redactor = redactor
        self._tools: list[Tool] | None = None

    _templates: ClassVar[dict[str, Tool]] = {}  # schemas are the same for every shell

    def tools(self) -> list[Tool]:
        if self._tools is None:
            made = []
            for name in BUILTIN_NAMES:
                method = getattr(self, name)
                template = self._templates.get(name)
                if template is None:
                    template = self._templates[name] = Tool.from_function(method, builtin=True)
                made.append(replace(template, function=method))
            self._tools = made
        return self._tools

    # -- helpers -----------------------------------------------------------------------
    def _redactor(self) -> Redactor:
        return shell_redactor(self.shell, self.base_redactor)

    def _variables(self) -> dict[str, object]:
        return user_variables(self.shell)

    def _value(self, name: str) -> object:
        """The user variable ``name``; raises LookupError with a message for the model."""
        name = name.strip()
        if is_secret_name(name):
            raise LookupError(f"{name!r} looks like a secret; its value is never shown.")
        variables = self._variables()
        if name in variables:
            return variables[name]
        namespace = getattr(self.shell, "user_ns", {}) or {}
        if name in namespace and not name.startswith("_"):
            return namespace[name]
        close = difflib.get_close_matches(name, list(variables), n=5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        listing = ", ".join(list(variables)[:30]) or "none"
        raise LookupError(f"No variable named {name!r}.{hint} Variables: {listing}.")

    # -- the tools (their docstrings are what the model reads) -------------------------
    def list_variables(self) -> str:
        """List the user's variables in the notebook with their type and size (dataframes
        with rows × columns). Use describe_variable or dataframe_head for details."""
        variables = self._variables()
        if not variables:
            return "The notebook has no user variables yet."
        names = list(variables)
        lines = [short_label(variables[n], n) for n in names[:MAX_LISTED_VARIABLES]]
        if len(names) > MAX_LISTED_VARIABLES:
            lines.append(f"… and {len(names) - MAX_LISTED_VARIABLES:,} more")
        return self._redactor().redact("\n".join(lines))

    def describe_variable(self, name: str) -> str:
        """Describe one variable of the notebook: for a dataframe its shape, columns, dtypes,
        missing values and a few rows; for an array its shape and dtype; for other values a
        short repr.

        Args:
            name: the variable's name, e.g. "df".
        """
        try:
            value = self._value(name)
        except LookupError as exc:
            return str(exc)
        from ..context.describe import describe

        text = _guarded(lambda: describe(value, name, max_chars=NAMED_CHARS), name)
        return self._redactor().redact(text)

    def dataframe_head(self, name: str, n: int = 5) -> str:
        """The first rows of a pandas or polars DataFrame or Series (or a numpy array).

        Args:
            name: the variable's name, e.g. "df".
            n: how many rows, 1 to 50.
        """
        try:
            value = self._value(name)
        except LookupError as exc:
            return str(exc)
        rows = min(max(int(n), 1), MAX_HEAD_ROWS)
        text = _guarded(lambda: _head(value, name, rows), name)
        return self._redactor().redact(text)

    def column_stats(self, name: str, column: str | None = None) -> str:
        """Statistics of one column of a DataFrame (or of a Series): dtype, missing and
        distinct values, then min / quartiles / mean / max for numbers, or the most frequent
        values otherwise.

        Args:
            name: the DataFrame's (or Series') variable name.
            column: the column's name; leave it out for a Series.
        """
        try:
            value = self._value(name)
        except LookupError as exc:
            return str(exc)
        text = _guarded(lambda: _column_stats(value, name, column), name)
        return self._redactor().redact(text)

    def get_cell(self, n: int) -> str:
        """The source and text output of a notebook cell.

        Args:
            n: the execution count, as in In[n]; negative numbers count back from the
                latest cell (-1 is the cell run just before this question).
        """
        inputs = raw_inputs(self.shell)
        executed = executed_counts(self.shell, inputs)
        count = int(n)
        if count < 0:
            if -count > len(executed):
                return f"Only {len(executed)} cells have run so far."
            count = executed[count]
        if count == running_count(self.shell):
            return f"In[{count}] is the cell asking this question."
        if not 0 < count < len(inputs) or not inputs[count].strip():
            last = len(inputs) - 1
            return f"There is no cell In[{count}]; cells run so far: In[1] to In[{last}]."
        text = cell_text(self.shell, count, inputs[count], self._redactor(), CELL_OUTPUT_CHARS)
        return f"In[{count}]:\n{text}"

    def search_cells(self, text: str) -> str:
        """Find the cells whose source or text output contains some text (case-insensitive),
        newest first, with the matching lines.

        Args:
            text: the text to look for, e.g. a column or function name.
        """
        needle = text.strip().lower()
        if not needle:
            return "Give some text to search for."
        inputs = raw_inputs(self.shell)
        hits: list[str] = []
        for count in reversed(executed_counts(self.shell, inputs)):
            hits.extend(self._matches(count, inputs[count], needle))
            if len(hits) >= MAX_SEARCH_HITS:
                break
        if not hits:
            return f"No cell contains {text!r}."
        shown = hits[:MAX_SEARCH_HITS]
        more = "\n… more matches in older cells" if len(hits) > MAX_SEARCH_HITS else ""
        return self._redactor().redact("\n".join(shown) + more)

    def _matches(self, count: int, source: str, needle: str) -> list[str]:
        found = [
            f"In[{count}] line {number}: {clip(line.strip(), SEARCH_LINE_CHARS)}"
            for number, line in enumerate(source.splitlines(), 1)
            if needle in line.lower()
        ]
        for kind, output in history_outputs(self.shell, count):
            label = f"Out[{count}]" if kind == "result" else f"In[{count}] {kind}"
            for line in ANSI.sub("", output).splitlines():
                if needle in line.lower():
                    found.append(f"{label}: {clip(line.strip(), SEARCH_LINE_CHARS)}")
                    break
        return found

    def get_last_error(self) -> str:
        """The last error raised in the notebook: exception, message, condensed traceback
        and the source of the failing cell."""
        info = last_error(self.shell)
        if info is None:
            return "No error has been raised in this session."
        return error_item(info, self._redactor()).text


# ------------------------------------------------------------------------------ values


def _guarded(work: Any, name: str) -> str:
    """Run ``work`` under the per-value time limit; a slow or failing value gives a note."""
    try:
        with time_limit(VALUE_TIME_LIMIT):
            return work()
    except DescribeTimeout:
        return f"{name}: <took longer than {VALUE_TIME_LIMIT:g} s; not shown>"
    except Exception as exc:
        return f"{name}: <could not read it: {type(exc).__name__}: {clip(str(exc), 300)}>"


def _library(value: object) -> str:
    return (type(value).__module__ or "").split(".")[0]


def _head(value: Any, name: str, rows: int) -> str:
    library = _library(value)
    label = short_label(value, name)
    if library == "pandas" and is_frame_like(value):
        if hasattr(value, "columns"):
            body = value.head(rows).to_string(max_cols=40, max_colwidth=60, line_width=200)
        else:
            body = value.head(rows).to_string()
        return f"{label}; first {rows} rows:\n{body}"
    if library == "polars" and is_frame_like(value):
        return f"{label}; first {rows} rows:\n{value.head(rows)}"
    if library == "numpy" and getattr(value, "ndim", 0) >= 1:
        import numpy as np

        part = value[:rows]
        body = np.array2string(part, threshold=2000, edgeitems=10, max_line_width=200)
        return f"{label}; first {rows} rows:\n{body}"
    return (
        f"{label} is not a DataFrame, Series or array; use describe_variable({name!r}) to see it."
    )


def _column_stats(value: Any, name: str, column: str | None) -> str:
    library = _library(value)
    if not is_frame_like(value) or library not in ("pandas", "polars"):
        return f"{short_label(value, name)} is not a DataFrame or Series."
    is_frame = hasattr(value, "columns")
    if is_frame:
        columns = [str(c) for c in value.columns]
        if column is None or column not in columns:
            return _missing_column(name, column, columns)
        series = value[_original_column(value, column)]
        where = f"{name}[{column!r}]"
    else:
        series = value
        where = name
    if library == "polars":
        return _polars_stats(series, where)
    return _pandas_stats(series, where)


def _original_column(frame: Any, column: str) -> Any:
    """pandas columns may be ints or tuples; the model names them as strings."""
    return next((c for c in frame.columns if str(c) == column), column)


def _missing_column(name: str, column: str | None, columns: list[str]) -> str:
    listing = clip(", ".join(columns), 2000)
    if column is None:
        return f"{name} is a DataFrame: say which column. Columns: {listing}."
    close = difflib.get_close_matches(column, columns, n=5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return f"No column {column!r} in {name}.{hint} Columns: {listing}."


def _pandas_stats(series: Any, where: str) -> str:
    import pandas as pd

    total = len(series)
    missing = int(series.isna().sum())
    distinct = int(series.nunique(dropna=True))
    lines = [
        f"{where}: dtype {series.dtype}, {total:,} values, {missing:,} missing, "
        f"{distinct:,} distinct"
    ]
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if numeric or pd.api.types.is_datetime64_any_dtype(series):
        lines.append(series.describe().to_string())
    else:
        top = series.value_counts(dropna=True).head(10)
        lines.append("most frequent values (count):")
        lines.extend(f"  {clip(str(k), 80)}: {int(v):,}" for k, v in top.items())
    return "\n".join(lines)


def _polars_stats(series: Any, where: str) -> str:
    total = len(series)
    missing = int(series.null_count())
    distinct = int(series.n_unique())
    lines = [
        f"{where}: dtype {series.dtype}, {total:,} values, {missing:,} missing, "
        f"{distinct:,} distinct"
    ]
    if series.dtype.is_numeric() or series.dtype.is_temporal():
        lines.append(str(series.describe()))
    else:
        counts = series.value_counts(sort=True).head(10)
        lines.append("most frequent values (count):")
        lines.extend(f"  {clip(str(row[0]), 80)}: {row[1]:,}" for row in counts.iter_rows())
    return "\n".join(lines)
