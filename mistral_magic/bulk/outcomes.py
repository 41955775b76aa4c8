"""What became of each request: a value, a failure, or nothing yet; and the per-row values
handed back to the user (``ApplyError`` for a row that failed)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..api.errors import MistralError
from .structured import InvalidReply

if TYPE_CHECKING:
    from ..api.types import Completion
    from ..engine.cache import ResponseCache
    from .inputs import Rows
    from .requests import PlannedRequest, RequestFactory


class ApplyError:
    """The value of a row that failed. Falsy, and its repr says why:

    ``ApplyError(row 17, request: The server rejected the request (HTTP 400: ...))``

    ``kind``: ``"request"`` (the API refused or kept failing), ``"invalid_reply"`` (not the
    JSON asked for, even after one correction), ``"interrupted"`` (not run: the job was
    stopped), ``"batch"`` (no result from the batch job).
    """

    __slots__ = ("kind", "message", "reply", "row", "status")

    def __init__(
        self,
        row: Any,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        reply: str | None = None,
    ) -> None:
        self.row = row
        self.kind = kind
        self.message = message
        self.status = status
        self.reply = reply

    def __repr__(self) -> str:
        return f"ApplyError(row {self.row!r}, {self.kind}: {self.message})"

    def __str__(self) -> str:
        return self.message

    def __bool__(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApplyError) and (self.row, self.kind, self.message) == (
            other.row,
            other.kind,
            other.message,
        )

    def __hash__(self) -> int:
        return hash((ApplyError, self.kind, self.message))


class ApplyFailed(MistralError):
    """Raised at the end with ``errors="raise"`` when rows failed. Nothing is lost:
    ``results`` holds every row's value (``ApplyError`` for the failed ones)."""

    def __init__(self, message: str, *, results: Any, errors: list[ApplyError]) -> None:
        super().__init__(message)
        self.results = results
        self.errors = errors


class ApplyCancelled(MistralError):
    """The estimated cost was above the threshold and the run was not confirmed."""


@dataclass
class Failure:
    kind: str
    message: str
    status: int | None = None
    reply: str | None = None


@dataclass
class RunStats:
    """Counters of a run, written by the worker thread and read by the progress bar."""

    rows_total: int = 0
    rows_done: int = 0  # answered, failed, cached or skipped
    rows_cached: int = 0
    rows_skipped: int = 0
    rows_failed: int = 0
    requests_sent: int = 0  # HTTP attempts that reached the server and were answered
    rate_limited: int = 0  # 429 answers seen
    prompt_tokens: int = 0
    completion_tokens: int = 0
    started: float = field(default_factory=time.monotonic)
    warnings: list[str] = field(default_factory=list)


SAVE_EVERY_REPLIES = 64  # replies are written to the cache in batches: one transaction each
SAVE_EVERY_SECONDS = 0.5


class Outcomes:
    """Replies and failures per request id; corrections for invalid JSON are planned here."""

    def __init__(
        self,
        factory: RequestFactory,
        stats: RunStats,
        cache: ResponseCache | None,
    ) -> None:
        self.factory = factory
        self.spec = factory.spec
        self.stats = stats
        self.cache = cache
        self.values: dict[int, Any] = {}
        self.failures: dict[int, Failure] = {}
        self.texts: dict[int, str] = {}  # the reply text behind each value
        self._lock = threading.Lock()
        self._unsaved: list[tuple[str, Completion]] = []  # replies not in the cache yet
        self._saved_at = time.monotonic()

    def is_resolved(self, request_id: int) -> bool:
        return request_id in self.values or request_id in self.failures

    def accept(
        self, request: PlannedRequest, completion: Completion, *, from_cache: bool = False
    ) -> PlannedRequest | None:
        """Record a reply; returns a correction request if the reply is not valid JSON."""
        if not from_cache:
            self._remember(request, completion)
        try:
            value = self.spec.parse(completion.content)
        except InvalidReply as problem:
            detail = str(problem)
            if completion.finish_reason == "length":
                detail += " The reply was cut at max_tokens; a larger max_tokens may help."
            if request.attempt == 0:
                return self.factory.correction(request, completion.content, detail)
            self._resolve(
                request,
                failure=Failure(
                    "invalid_reply",
                    f"The reply is not the JSON asked for, even after one correction: {detail}",
                    reply=completion.content,
                ),
            )
            return None
        self.texts[request.id] = completion.content
        self._resolve(request, value=value, cached=from_cache)
        return None

    def reject(self, request: PlannedRequest, error: MistralError) -> None:
        self.fail(request, Failure("request", str(error), status=error.status))

    def fail(self, request: PlannedRequest, failure: Failure) -> None:
        self._resolve(request, failure=failure)

    def _remember(self, request: PlannedRequest, completion: Completion) -> None:
        usage = completion.usage
        with self._lock:
            if usage is not None:
                self.stats.prompt_tokens += usage.prompt_tokens
                self.stats.completion_tokens += usage.completion_tokens
        if self.cache is None:
            return
        with self._lock:
            self._unsaved.append((request.key, completion))
            due = (
                len(self._unsaved) >= SAVE_EVERY_REPLIES
                or time.monotonic() - self._saved_at > SAVE_EVERY_SECONDS
            )
        if due:
            self.save()

    def save(self) -> None:
        """Write the replies not yet in the cache (one transaction); safe to call any time."""
        with self._lock:
            batch, self._unsaved = self._unsaved, []
            self._saved_at = time.monotonic()
        if not batch or self.cache is None:
            return
        try:
            self.cache.put_many(batch)
        except Exception as exc:  # a full disk or a damaged file must not lose the reply
            self.cache = None
            self.stats.warnings.append(
                f"The response cache stopped working ({type(exc).__name__}: {exc}); the run "
                "went on without it."
            )

    def _resolve(
        self,
        request: PlannedRequest,
        *,
        value: Any = None,
        failure: Failure | None = None,
        cached: bool = False,
    ) -> None:
        with self._lock:
            if self.is_resolved(request.id):
                return
            if failure is not None:
                self.failures[request.id] = failure
                self.stats.rows_failed += len(request.rows)
            else:
                self.values[request.id] = value
                if cached:
                    self.stats.rows_cached += len(request.rows)
            self.stats.rows_done += len(request.rows)

    # -- per-row values -----------------------------------------------------------------
    def row_values(
        self,
        rows: Rows,
        requests: Sequence[PlannedRequest],
        *,
        unfinished: Failure,
    ) -> tuple[list[Any], list[ApplyError]]:
        """The value of every row in input order, and the errors among them."""
        values: list[Any] = [None] * len(rows)
        errors: list[ApplyError] = []
        for request in requests:
            for position in request.rows:
                if request.id in self.values:
                    values[position] = self.values[request.id]
                    continue
                failure = self.failures.get(request.id, unfinished)
                error = ApplyError(
                    rows.labels[position],
                    failure.kind,
                    failure.message,
                    status=failure.status,
                    reply=failure.reply,
                )
                values[position] = error
                errors.append(error)
        return values, errors
