"""What the magics call for data jobs (wired in ``magics.py``):

%%mistral --map df.text [--json] [--cache] [--batch] [-m MODEL] [-t T] ...
Classify the sentiment of this review:

%mistral cache info | clear
"""

from __future__ import annotations

from typing import Any

from ..engine.cache import CacheError, ResponseCache
from .apply import apply_rows
from .inputs import rows_from
from .session import current_settings
from .template import Template

CACHE_ACTIONS = ("info", "clear")


def run_map_magic(
    shell: Any,
    column_expr: str,
    template: str,
    *,
    model: str | None = None,
    params: dict[str, Any] | None = None,
    json: bool = False,
    cache: bool = False,
    batch: bool = False,
    concurrency: int = 8,
    errors: str = "value",
    progress: bool = True,
) -> Any:
    """``%%mistral --map EXPR``: the cell is the template, applied to each item of ``EXPR``
    (evaluated in the user's namespace: ``df.text``, ``df["text"]``, ``df``, a list).

    A cell without any ``{}``/``{column}`` field gets the item appended after a blank line,
    so ``Classify the sentiment of this review:`` alone works for a Series or a list. For a
    DataFrame the cell names its columns: ``{title}: {body}``. The cache is opt-in here
    (``cache=True`` for ``--cache``). Returns the list / Series, like ``apply``.
    """
    from IPython.core.error import UsageError

    from .template import TemplateError

    data = _evaluate(shell, column_expr)
    try:
        rows = rows_from(data, Template(template.strip()), append_item=True)
    except (TemplateError, TypeError) as error:
        raise UsageError(f"%%mistral --map {column_expr}: {error}") from None
    return apply_rows(
        rows,
        model=model,
        concurrency=concurrency,
        json=json,
        json_schema=None,
        cache=cache,
        batch=batch,
        system=None,
        errors=errors,
        confirm=None,
        progress=progress,
        params=dict(params or {}),
    )


def _evaluate(shell: Any, expression: str) -> Any:
    from IPython.core.error import UsageError

    if not expression.strip():
        raise UsageError("--map needs the data to go over, e.g. --map df.text")
    try:
        return eval(expression, shell.user_ns)  # the user's own expression, in their kernel
    except Exception as error:
        raise UsageError(
            f"--map {expression}: evaluating it failed ({type(error).__name__}: {error}). "
            "Give a list, a Series such as df.text, or a DataFrame defined in the notebook."
        ) from None


def cache_subcommand(action: str) -> str:
    """``%mistral cache info|clear`` as Markdown. Unknown actions raise UsageError."""
    from IPython.core.error import UsageError

    if action not in CACHE_ACTIONS:
        raise UsageError(
            f"`%mistral cache` takes {' or '.join(CACHE_ACTIONS)}, not {action!r}: "
            "`info` shows where the response cache is and how big, `clear` empties it."
        )
    settings = current_settings()
    try:
        cache = ResponseCache.from_settings(settings)
    except CacheError as error:
        return str(error)
    with cache:
        if action == "info":
            return (
                cache.info().markdown()
                + "\n\nUsed by `apply()` (on for temperature 0 or a fixed seed) and by "
                "`%%mistral --cache`. Settings: `Mistral.cache_dir`, `Mistral.cache_max_mb`."
            )
        removed = cache.clear()
        return f"Removed {removed:,} cached responses from `{cache.path}`."
