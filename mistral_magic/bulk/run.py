"""One run of ``apply``: plan the requests, take what the cache has, estimate, run the rest
(concurrently or as a batch job), and hand back every row's value in input order."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..api.retry import RetryPolicy
from ..engine.cache import CacheError, ResponseCache
from ..engine.usage import estimate_cost, format_cost
from .outcomes import ApplyError, ApplyFailed, Failure, Outcomes, RunStats
from .pool import POOL_MAX_BACKOFF, Pool, run_in_thread
from .preflight import Estimate, estimate
from .progress import Progress
from .requests import PlannedRequest, RequestFactory
from .session import async_clients, sync_client

if TYPE_CHECKING:
    from ..config import Mistral
    from .inputs import Rows
    from .structured import OutputSpec

NOT_RUN = Failure("interrupted", "Not run: the job was interrupted before this row finished.")


def chat_params(
    settings: Mistral, params: Mapping[str, Any], spec: OutputSpec, model: str
) -> dict[str, Any]:
    """Every parameter of the requests: apply's defaults (temperature 0, the settings'
    max_tokens / top_p), the caller's values, and response_format for the JSON modes."""
    for name in ("stream", "messages"):
        if name in params:
            raise TypeError(f"apply() builds {name!r} itself; it cannot be passed.")
    out: dict[str, Any] = {"model": model, "temperature": 0.0, "max_tokens": settings.max_tokens}
    if settings.top_p is not None:
        out["top_p"] = settings.top_p
    out.update(params)
    if spec.response_format is not None:
        if out.get("response_format") not in (None, spec.response_format):
            raise TypeError(
                "Pass either json=True / json_schema=... or response_format=..., not both."
            )
        out["response_format"] = spec.response_format
    return {k: v for k, v in out.items() if v is not None}


def is_repeatable(params: Mapping[str, Any]) -> bool:
    """Temperature 0 or a fixed seed: the same request should give the same reply."""
    return params.get("temperature") == 0 or any(
        params.get(k) is not None for k in ("random_seed", "seed")
    )


def open_cache(settings: Mistral, choice: Any, params: Mapping[str, Any]) -> ResponseCache | None:
    """``cache=`` resolved: a ResponseCache, True/False, or None (on when repeatable)."""
    if isinstance(choice, ResponseCache):
        return choice
    if choice is None:
        choice = is_repeatable(params)
    if not choice:
        return None
    try:
        return ResponseCache.from_settings(settings)
    except CacheError as error:
        print(f"{error} The run goes on without the cache.", file=sys.stderr)
        return None


class BulkRun:
    def __init__(
        self,
        settings: Mistral,
        rows: Rows,
        spec: OutputSpec,
        *,
        model: str | None,
        params: Mapping[str, Any],
        cache: Any,
        system: str | None,
        concurrency: int,
        price_factor: float = 1.0,
        show_progress: bool = True,
        requests: list[PlannedRequest] | None = None,
    ) -> None:
        self.settings = settings
        self.rows = rows
        self.spec = spec
        self.model = model or settings.model
        self.params = chat_params(settings, params, spec, self.model)
        with sync_client(settings, self.model) as client:  # what the server is, asked once
            self.base_url = client.base_url
            self.dialect = client.resolve_dialect()
        self.factory = RequestFactory(
            self.base_url, self.dialect.dialect, self.params, spec, system
        )
        self.own_cache = not isinstance(cache, ResponseCache)
        self.cache = open_cache(settings, cache, self.params)
        if requests is None:
            requests = self.factory.plan(rows.prompts, dedupe=self.cache is not None)
        self.requests = requests
        self.concurrency = concurrency
        self.price_factor = price_factor
        self.show_progress = show_progress
        skipped = sum(1 for p in rows.prompts if p is None)
        self.stats = RunStats(rows_total=len(rows), rows_done=skipped, rows_skipped=skipped)
        self.outcomes = Outcomes(self.factory, self.stats, self.cache)

    # -- before ---------------------------------------------------------------------------
    def take_cached(self) -> list[PlannedRequest]:
        """Resolve every request the cache answers; the requests still to send."""
        if self.cache is None:
            return list(self.requests)
        try:
            hits = self.cache.get_many(r.key for r in self.requests)
        except Exception as exc:
            self.stats.warnings.append(f"The response cache could not be read ({exc}).")
            hits = {}
        pending: list[PlannedRequest] = []
        for request in self.requests:
            completion = hits.get(request.key)
            if completion is None:
                pending.append(request)
                continue
            correction = self.outcomes.accept(request, completion, from_cache=True)
            if correction is not None:
                pending.append(correction)
        return pending

    def estimate(self, pending: list[PlannedRequest]) -> Estimate:
        return estimate(
            pending,
            model=self.model,
            price=self.settings.price,
            max_tokens=self.params.get("max_tokens"),
            rows=len(self.rows),
            cached_rows=self.stats.rows_cached,
            skipped_rows=self.stats.rows_skipped,
            price_factor=self.price_factor,
        )

    # -- during ---------------------------------------------------------------------------
    def cost_so_far(self, stats: RunStats) -> float | None:
        cost = estimate_cost(
            self.model, stats.prompt_tokens, stats.completion_tokens, self.settings.price
        )
        return None if cost is None else cost * self.price_factor

    def progress(self, **kwargs: Any) -> Progress:
        kwargs.setdefault("total", self.stats.rows_total)
        kwargs.setdefault("initial", self.stats.rows_done)
        return Progress(self.stats, self.cost_so_far, enabled=self.show_progress, **kwargs)

    def run_concurrently(self, pending: list[PlannedRequest], bar: Progress) -> None:
        """Send ``pending`` through the adaptive pool. KeyboardInterrupt propagates once the
        requests in flight have finished (the finished rows stay recorded and cached)."""
        if not pending:
            return
        clients = async_clients(
            self.settings, self.model, self.dialect, min(self.concurrency, len(pending))
        )
        pool = Pool(
            clients,
            self.outcomes,
            self.stats,
            self.concurrency,
            RetryPolicy(
                max_retries=self.settings.max_retries,
                max_backoff=POOL_MAX_BACKOFF,
                total_time=self.settings.retry_budget,
            ),
            self.cache,
        )

        async def work() -> None:
            try:
                await pool.run(pending)
            finally:
                for client in clients:
                    await client.aclose()

        def stopping() -> None:
            waiting = pool.in_flight
            if waiting:
                print(
                    f"Stopping: the {waiting:,} request(s) in flight finish first and their "
                    "answers are kept (press Ctrl-C again to drop them).",
                    file=sys.stderr,
                )

        try:
            run_in_thread(work, tick=bar.tick, stop=pool.stop, on_stop=stopping)
        finally:
            self.outcomes.save()  # what finished is in the cache, also after Ctrl-C

    # -- after ----------------------------------------------------------------------------
    def results(self, unfinished: Failure = NOT_RUN) -> tuple[Any, list[ApplyError]]:
        values, errors = self.outcomes.row_values(self.rows, self.requests, unfinished=unfinished)
        return self.rows.shape.build(values), errors

    def summary(self, elapsed: float) -> str:
        s = self.stats
        answered = s.rows_done - s.rows_cached - s.rows_failed - s.rows_skipped
        parts = [f"{answered:,} rows answered"]
        if s.rows_cached:
            parts.append(f"{s.rows_cached:,} from the cache")
        if s.rows_skipped:
            parts.append(f"{s.rows_skipped:,} empty")
        if s.rows_failed:
            parts.append(f"{s.rows_failed:,} failed (their values are ApplyError)")
        tokens = f"{s.prompt_tokens:,} → {s.completion_tokens:,} tokens"
        cost = format_cost(self.cost_so_far(s))
        return f"Done in {elapsed:.1f} s: {', '.join(parts)} · {tokens} · {cost}"

    def interrupted_note(self, what: str) -> str:
        s = self.stats
        unfinished = s.rows_total - s.rows_done
        if self.cache is not None:
            resume = (
                "Finished rows are in the response cache: run the same call again to finish "
                "the rest; the finished rows come from the cache and cost nothing."
            )
        else:
            resume = (
                "The cache was off (temperature above 0 and no seed), so a re-run asks again "
                "for every row: pass cache=True to keep finished rows next time."
            )
        return (
            f"{what} after {s.rows_done:,} of {s.rows_total:,} rows. The results so far are "
            f"returned; the {unfinished:,} unfinished rows hold ApplyError(..., interrupted). "
            f"{resume}"
        )

    def _record_usage(self) -> None:
        """Into the session's ``%mistral usage`` when the shell has a session."""
        from ..session import current_session

        s = self.stats
        session = current_session()
        if session is None or not (s.prompt_tokens or s.completion_tokens):
            return
        answered = s.rows_done - s.rows_cached - s.rows_failed - s.rows_skipped
        requests = s.requests_sent or answered  # a batch job sends no requests of its own
        session.ledger.record_bulk(
            self.model, requests, s.prompt_tokens, s.completion_tokens, self.price_factor
        )

    def close(self) -> None:
        self.outcomes.save()
        if self.cache is not None and self.own_cache:
            self.cache.close()

    def finish(
        self,
        *,
        errors: str,
        started: float,
        note: str | None = None,
        unfinished: Failure = NOT_RUN,
    ) -> Any:
        """Warnings, the summary, and the output (or ApplyFailed with errors="raise").
        ``note``: the run was interrupted; say so instead of the summary."""
        self.outcomes.save()
        self._record_usage()
        output, failed = self.results(unfinished)
        for warning in self.stats.warnings:
            print(warning, file=sys.stderr)
        if note:
            print(note, file=sys.stderr)
        elif self.show_progress:
            print(self.summary(time.monotonic() - started))
        if failed and errors == "raise" and not note:
            first = failed[0]
            raise ApplyFailed(
                f"{len(failed):,} of {len(self.rows):,} rows failed; the first, row "
                f"{first.row!r}: {first.message} Every row's value, the failed ones as "
                "ApplyError, is in this exception's .results.",
                results=output,
                errors=failed,
            )
        return output
