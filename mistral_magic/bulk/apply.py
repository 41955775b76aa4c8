"""``mistral_magic.apply`` and ``mistral_magic.map``: one prompt per row, replies in order."""

from __future__ import annotations

import time
from typing import Any

from . import preflight
from .inputs import Rows, rows_from
from .outcomes import ApplyError, Failure
from .requests import PlannedRequest
from .run import NOT_RUN, BulkRun
from .session import check_credentials, current_settings, sync_client
from .structured import output_spec
from .template import Template

__all__ = ["ApplyError", "apply", "map"]

Stopped = tuple[str, Failure]  # the note to show, and the value of unfinished rows


def apply(
    data: Any,
    template: str,
    *,
    model: str | None = None,
    concurrency: int = 8,
    json: bool = False,
    json_schema: Any = None,
    cache: Any = None,
    batch: bool = False,
    system: str | None = None,
    errors: str = "value",
    confirm: bool | float | None = None,
    progress: bool = True,
    **params: Any,
) -> Any:
    """Ask Mistral once per row of ``data`` and return the replies in input order.

    ``data``: a list (or any iterable) -> a list; a pandas Series -> a Series on the same
    index; a DataFrame -> a Series on its index. ``template`` follows ``str.format``: ``{}``
    is the item of a list/Series, ``{column}`` a DataFrame column (or a key of list items
    that are dicts); write literal braces, e.g. in a JSON example, as ``{{`` and ``}}``.
    A row whose fields are all missing (None/NaN) is not sent; its value is None.

        df["label"] = mistral_magic.apply(df["text"], "Classify the sentiment of: {}",
                                          json_schema=Label, concurrency=8)

    Replies: the text, or with ``json=True`` the parsed JSON object, or with ``json_schema``
    (a pydantic model, a dataclass, or a JSON Schema dict) a validated instance (a dict for a
    dict schema). Both JSON modes send ``response_format={"type": "json_object"}`` and put
    the schema in the prompt: mistral-large-2407 predates the API's ``json_schema`` format.
    An invalid reply is corrected once (the model is shown the problem), then reported.

    Requests run ``concurrency`` at a time; a 429 pauses and narrows the whole pool (honouring
    Retry-After), which then widens again. A failed row holds an :class:`ApplyError` (falsy;
    its repr says why) and never loses the others; ``errors="raise"`` raises ApplyFailed at
    the end instead, with every value in its ``.results``.

    Chat parameters go in ``**params`` (``temperature``, ``max_tokens``, ``top_p``, ``stop``,
    ``random_seed``/``seed``, ...). Unlike the chat magics, apply defaults to temperature 0:
    repeatable answers, which the cache can keep. ``system`` adds a system message.

    ``cache``: None (default) caches when the requests are repeatable (temperature 0 or a
    fixed seed), True/False forces it, or pass a ``mistral_magic.engine.cache.ResponseCache``.
    Cached rows cost nothing, so re-running a finished (or interrupted) call is free and fast.

    Before starting it prints the number of requests, the exact prompt tokens and the
    estimated cost, and asks for confirmation above ``Mistral.confirm_above`` USD (above
    :data:`~.preflight.APPLY_CONFIRM_ABOVE` while that is None: a job is many requests;
    ``confirm=False`` never asks, ``confirm=True`` always does, a number is this call's
    threshold in USD). ``progress=False`` hides
    the progress bar and these lines. Ctrl-C returns the rows finished so far (the rest hold
    ApplyError(..., interrupted)) and says how to resume.

    ``batch=True`` sends the rows as one job of Mistral's Batch API (La Plateforme only) at
    the batch price (``Mistral.batch_price_factor``, 50% of the normal price), waits for it
    with a progress bar and maps the results back in order. The job keeps running if you
    stop waiting: ``mistral_magic.batch_results(job_id)`` fetches it later, even after a
    kernel restart, and re-running the same call picks the job up instead of paying twice.
    """
    _check_options(concurrency, errors)
    rows = rows_from(data, Template(template))
    return apply_rows(
        rows,
        model=model,
        concurrency=concurrency,
        json=json,
        json_schema=json_schema,
        cache=cache,
        batch=batch,
        system=system,
        errors=errors,
        confirm=confirm,
        progress=progress,
        params=params,
    )


def map(  # the public name the issue asks for: mistral_magic.map
    data: Any, template: str = "{}", **options: Any
) -> Any:
    """:func:`apply` under another name, with ``{}`` (the item itself) as default template:
    ``mistral_magic.map(["a question", "another"])``."""
    return apply(data, template, **options)


def apply_rows(
    rows: Rows,
    *,
    model: str | None,
    concurrency: int,
    json: bool,
    json_schema: Any,
    cache: Any,
    batch: bool,
    system: str | None,
    errors: str,
    confirm: bool | float | None,
    progress: bool,
    params: dict[str, Any],
) -> Any:
    """:func:`apply` once the rows are known (the magic builds them its own way)."""
    settings = current_settings()
    spec = output_spec(json, json_schema)
    run = BulkRun(
        settings,
        rows,
        spec,
        model=model,
        params=params,
        cache=cache,
        system=system,
        concurrency=concurrency,
        price_factor=settings.batch_price_factor if batch else 1.0,
        show_progress=progress,
    )
    try:
        pending = run.take_cached()
        if pending:
            with sync_client(settings, run.model) as client:
                check_credentials(client)
            found = run.estimate(pending)
            if progress:
                print(found.describe())
            preflight.check_budget(found, settings.session_budget, _spent())
            threshold, ask = preflight.confirm_threshold(settings.confirm_above), confirm
            if isinstance(confirm, (int, float)) and not isinstance(confirm, bool):
                threshold, ask = float(confirm), None
            preflight.confirm(found, threshold=threshold, ask=ask)
        started = time.monotonic()
        stopped = _execute(run, pending, batch=batch)
        if stopped is None:
            return run.finish(errors=errors, started=started)
        note, unfinished = stopped
        return run.finish(errors=errors, started=started, note=note, unfinished=unfinished)
    finally:
        run.close()


def _spent() -> float:
    """What the running shell's session has spent (USD), 0 without a session."""
    from ..session import current_session

    session = current_session()
    return session.spent()[0] if session is not None else 0.0


def _execute(run: BulkRun, pending: list[PlannedRequest], *, batch: bool) -> Stopped | None:
    """Send ``pending``; on Ctrl-C, the note to show and what unfinished rows hold."""
    if not pending:
        return None
    if batch:
        from .batch import run_as_batch

        return run_as_batch(run, pending)
    bar = run.progress()
    try:
        run.run_concurrently(pending, bar)
    except KeyboardInterrupt:
        return run.interrupted_note("Interrupted"), NOT_RUN
    finally:
        bar.close()
    return None


def _check_options(concurrency: int, errors: str) -> None:
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(
            f"concurrency must be a whole number of requests, 1 or more, not {concurrency!r}."
        )
    if errors not in ("value", "raise"):
        raise ValueError(
            f'errors must be "value" (failed rows hold ApplyError) or "raise", not {errors!r}.'
        )
