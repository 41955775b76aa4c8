"""The built-in, read-only notebook tools: the model looks into the live kernel on demand.

They reuse the context engine's pieces (``context.kernel`` / ``context.describe``), so a tool
sees exactly what the up-front context would: the same describers and caps, only the user's
variables (never IPython's ``In``/``Out``/``_i3``…, never secret-named ones), every text
redacted before it is clipped (:func:`~mistral_magic.context.fit.fit`) with the same
redactor (the configured key, secret-named environment variables and user variables,
credential patterns). Slow values are cut off by the same guard.
"""

from __future__ import annotations

import difflib
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from ..context.describe import short_label
from ..context.errors import error_item, last_error
from ..context.fit import CLIPPED, bound, clip, fit, one_line, redact_bounded
from ..context.guard import DescribeTimeout, time_limit
from ..context.history import (
    OUTPUT_WORK_CHARS,
    cell_text,
    executed_counts,
    history_outputs,
    raw_inputs,
    running_count,
)
from ..context.kernel import (
    NAMED_CHARS,
    GuardedDescriber,
    is_frame_like,
    shell_redactor,
    user_variables,
    visible_variables,
)
from ..context.redact import is_secret_name
from .core import BUILTIN_NAMES, Tool

if TYPE_CHECKING:
    from ..context.redact import Redactor

MAX_LISTED_VARIABLES = 200
MAX_HEAD_ROWS = 50
MAX_SEARCH_HITS = 20
SEARCH_LINE_CHARS = 200
CELL_OUTPUT_CHARS = 4000
HEAD_CELL_CHARS = 60  # a table cell in dataframe_head
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
        """The user variable ``name`` (or another visible name, such as a module); raises
        LookupError with a message for the model. IPython's own names (``In``, ``Out``,
        ``_i3``, ``_3``, ``get_ipython``…) are not the user's: not found."""
        name = name.strip()
        if is_secret_name(name):
            raise LookupError(f"{name!r} looks like a secret; its value is never shown.")
        variables = self._variables()
        if name in variables:
            return variables[name]
        visible = visible_variables(self.shell)
        if name in visible and not name.startswith("_"):
            return visible[name]
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
        redactor = self._redactor()
        describer = GuardedDescriber(
            redactor, time_budget=VALUE_TIME_LIMIT, value_time_limit=VALUE_TIME_LIMIT
        )
        return redactor.redact(describer(value, name, NAMED_CHARS))

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
        redactor = self._redactor()
        text = _guarded(lambda: _head(value, name, rows, redactor), name)
        return redactor.redact(text)

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
        redactor = self._redactor()
        text = _guarded(lambda: _column_stats(value, name, column, redactor), name)
        return redactor.redact(text)

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
        redactor = self._redactor()
        hits: list[str] = []
        for count in reversed(executed_counts(self.shell, inputs)):
            hits.extend(self._matches(count, inputs[count], needle, redactor))
            if len(hits) >= MAX_SEARCH_HITS:
                break
        if not hits:
            return f"No cell contains {text!r}."
        shown = hits[:MAX_SEARCH_HITS]
        more = "\n… more matches in older cells" if len(hits) > MAX_SEARCH_HITS else ""
        return redactor.redact("\n".join(shown) + more)

    def _matches(self, count: int, source: str, needle: str, redactor: Redactor) -> list[str]:
        """Matching lines of a cell, each redacted before it is clipped. Huge sources and
        outputs are searched in their first and last :data:`OUTPUT_WORK_CHARS` characters."""

        def shown(line: str) -> str:
            return fit(line.strip(), SEARCH_LINE_CHARS, redactor, clean=one_line)

        found = [
            f"In[{count}] line {number}: {shown(line)}"
            for number, line in enumerate(bound(source, OUTPUT_WORK_CHARS).splitlines(), 1)
            if needle in line.lower()
        ]
        for kind, output in history_outputs(self.shell, count, redactor):
            label = f"Out[{count}]" if kind == "result" else f"In[{count}] {kind}"
            text = redact_bounded(output, None, head=OUTPUT_WORK_CHARS, tail=OUTPUT_WORK_CHARS)
            for line in text.splitlines():
                if needle in line.lower() and line != CLIPPED.strip():
                    found.append(f"{label}: {shown(line)}")
                    break
        return found

    def get_last_error(self) -> str:
        """The last error raised in the notebook: exception, message, condensed traceback
        and the source of the failing cell."""
        redactor = self._redactor()
        info = last_error(self.shell, redactor)
        if info is None:
            return "No error has been raised in this session."
        return error_item(info, redactor).text


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


def _value_text(value: Any, redactor: Redactor) -> str:
    """One value of a column (a most frequent value), redacted before it is clipped."""
    return fit(str(value), 80, redactor, clean=one_line)


def _library(value: object) -> str:
    return (type(value).__module__ or "").split(".")[0]


def _cell_fitter(redactor: Redactor) -> Any:
    """A table cell's text, redacted before it is clipped (pandas and polars clip long cells
    themselves when they print: they get the redacted text, already short enough)."""

    def fitted(cell: Any) -> Any:
        return (
            fit(cell, HEAD_CELL_CHARS, redactor, clean=one_line) if isinstance(cell, str) else cell
        )

    return fitted


def _head(value: Any, name: str, rows: int, redactor: Redactor) -> str:
    library = _library(value)
    label = short_label(value, name)
    fitted = _cell_fitter(redactor)
    if library == "pandas" and is_frame_like(value):
        head = value.head(rows)
        if hasattr(value, "columns"):
            head = head.map(fitted)
            body = head.to_string(max_cols=40, max_colwidth=HEAD_CELL_CHARS + 5, line_width=200)
        else:
            body = head.map(fitted).to_string()
        return f"{label}; first {rows} rows:\n{body}"
    if library == "polars" and is_frame_like(value):
        import polars as pl

        head = value.head(rows)
        frame = head if hasattr(head, "columns") else head.to_frame()
        strings = [c for c, dtype in frame.schema.items() if dtype == pl.String]
        if strings:
            frame = frame.with_columns(
                pl.col(c).map_elements(fitted, return_dtype=pl.String) for c in strings
            )
        with pl.Config(fmt_str_lengths=HEAD_CELL_CHARS + 5, tbl_rows=rows):
            body = str(frame if hasattr(head, "columns") else frame.to_series())
        return f"{label}; first {rows} rows:\n{body}"
    if library == "numpy" and getattr(value, "ndim", 0) >= 1:
        import numpy as np

        part = value[:rows]
        body = np.array2string(part, threshold=2000, edgeitems=10, max_line_width=200)
        return f"{label}; first {rows} rows:\n{body}"
    return (
        f"{label} is not a DataFrame, Series or array; use describe_variable({name!r}) to see it."
    )


def _column_stats(value: Any, name: str, column: str | None, redactor: Redactor) -> str:
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
        return _polars_stats(series, where, redactor)
    return _pandas_stats(series, where, redactor)


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


def _pandas_stats(series: Any, where: str, redactor: Redactor) -> str:
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
        lines.extend(f"  {_value_text(k, redactor)}: {int(v):,}" for k, v in top.items())
    return "\n".join(lines)


def _polars_stats(series: Any, where: str, redactor: Redactor) -> str:
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
        lines.extend(f"  {_value_text(row[0], redactor)}: {row[1]:,}" for row in counts.iter_rows())
    return "\n".join(lines)
