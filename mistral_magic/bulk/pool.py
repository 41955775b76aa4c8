"""The concurrent runner: up to ``concurrency`` requests in flight, adapting to 429s.

* One 429 pauses the whole pool (for Retry-After when the server sends it, else an
  exponential backoff) and halves the number of requests allowed in flight; each success
  then raises it again by about one per round trip of the pool, up to ``concurrency``
  (additive increase, multiplicative decrease).
* Per item: what the client's :class:`~mistral_magic.api.retry.RetryPolicy` calls transient
  (5xx, a connection that could not be made) is retried with its backoff, up to its
  ``max_retries``; a read timeout or a reply that is not the protocol is not (it may have
  been billed); a 400/422 fails only that item; errors that would fail every item (no key,
  key refused, unknown model, wrong URL) stop the run at once.
* Waits come from the same policy as the client's own retries: one place decides.
* The asyncio loop runs in a worker thread, so this works inside Jupyter (whose own loop is
  already running) and Ctrl-C reaches the caller's thread; see :func:`run_in_thread`.
* Ctrl-C stops the pool (:meth:`Pool.stop`): no new request starts, and the requests already
  in flight finish, so their answers (computed, and billed, by the server anyway) are kept
  and cached instead of being asked again on resume. A second Ctrl-C drops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..api.errors import (
    AuthenticationError,
    InvalidRequestError,
    MissingAPIKeyError,
    MistralError,
    ModelNotFoundError,
    RateLimitError,
)
from ..api.retry import RetryPolicy

if TYPE_CHECKING:
    from ..api.async_client import AsyncMistralClient
    from ..api.types import Completion
    from ..engine.cache import ResponseCache
    from .outcomes import Outcomes, RunStats
    from .requests import PlannedRequest

MAX_RATE_LIMITED_TRIES = 10  # per item: 429s are the pool's problem, but not forever
# A pause of the whole pool may grow longer than one request's backoff.
POOL_MAX_BACKOFF = 20.0


def is_fatal(error: MistralError) -> bool:
    """Errors that every other request would get too: stop instead of failing each row."""
    if isinstance(error, (MissingAPIKeyError, AuthenticationError, ModelNotFoundError)):
        return True
    return isinstance(error, InvalidRequestError) and error.status == 404


class Throttle:
    """How many requests may be in flight, and until when everyone waits."""

    def __init__(self, ceiling: int, policy: RetryPolicy) -> None:
        self.policy = policy
        self.ceiling = max(1, ceiling)
        self.limit = float(self.ceiling)
        self.active = 0
        self.resume_at = 0.0
        self._last_cut = float("-inf")
        self._strikes = 0  # consecutive rate-limit events without a success in between
        self._changed = asyncio.Condition()

    @property
    def allowed(self) -> int:
        return max(1, int(self.limit))

    async def acquire(self) -> float:
        """Wait for a slot; returns the start time to pass to :meth:`release`."""
        while True:
            pause = self.resume_at - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
                continue
            async with self._changed:
                if time.monotonic() < self.resume_at:
                    continue
                if self.active < self.allowed:
                    self.active += 1
                    return time.monotonic()
                await self._changed.wait()

    async def release(
        self, started: float, *, ok: bool, rate_limited: RateLimitError | None = None
    ) -> None:
        async with self._changed:
            self.active -= 1
            if rate_limited is not None:
                self._throttled(started, rate_limited)
            elif ok:
                self._strikes = 0
                self.limit = min(float(self.ceiling), self.limit + 1.0 / self.limit)
            self._changed.notify_all()

    def _throttled(self, started: float, error: RateLimitError) -> None:
        now = time.monotonic()
        if started >= self._last_cut:  # one cut per congestion event, not one per reply
            self.limit = max(1.0, self.limit / 2)
            self._last_cut = now
            self._strikes += 1
        wait = self.policy.delay(error, max(self._strikes - 1, 0))
        self.resume_at = max(self.resume_at, now + wait)


@dataclass
class Pool:
    """``concurrency`` workers, each with its own client from ``clients`` (reused round the
    list when there are fewer clients than workers)."""

    clients: list[AsyncMistralClient]
    outcomes: Outcomes
    stats: RunStats
    concurrency: int
    policy: RetryPolicy
    cache: ResponseCache | None = None
    _stopping: bool = field(default=False, init=False)
    _workers: list[asyncio.Task[None]] = field(default_factory=list, init=False)
    _sending: set[asyncio.Task[Any]] = field(default_factory=set, init=False)

    @property
    def in_flight(self) -> int:
        """Requests sent and not answered yet."""
        return len(self._sending)

    def stop(self) -> None:
        """Start no new request; let those in flight finish (their answers are kept). Call
        it on the pool's event loop."""
        self._stopping = True
        for task in self._workers:
            if task not in self._sending:
                task.cancel()

    async def run(self, requests: Iterable[PlannedRequest]) -> None:
        queue: asyncio.Queue[PlannedRequest] = asyncio.Queue()
        for request in requests:
            queue.put_nowait(request)
        if queue.empty():
            return
        throttle = Throttle(self.concurrency, self.policy)
        workers = [
            asyncio.ensure_future(
                self._worker(queue, throttle, self.clients[k % len(self.clients)])
            )
            for k in range(min(self.concurrency, queue.qsize()))
        ]
        self._workers = workers
        finished = asyncio.ensure_future(queue.join())
        waiting: set[asyncio.Future[Any]] = {finished, *workers}
        try:
            while finished in waiting and len(waiting) > 1:  # done, or every worker stopped
                done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is not finished and not task.cancelled() and task.exception():
                        raise task.exception()  # type: ignore[misc]
        finally:
            for task in [finished, *workers]:
                task.cancel()
            await asyncio.gather(finished, *workers, return_exceptions=True)

    async def _worker(
        self,
        queue: asyncio.Queue[PlannedRequest],
        throttle: Throttle,
        client: AsyncMistralClient,
    ) -> None:
        while not self._stopping:
            request = await queue.get()
            try:
                follow_up = await self._handle(request, throttle, client)
                if follow_up is not None and not self._stopping:
                    queue.put_nowait(follow_up)
            finally:
                queue.task_done()

    async def _handle(
        self, request: PlannedRequest, throttle: Throttle, client: AsyncMistralClient
    ) -> PlannedRequest | None:
        cached = self._cached(request)
        if cached is not None:
            return self.outcomes.accept(request, cached, from_cache=True)
        failures = rate_limited = 0
        while not self._stopping:
            started = await throttle.acquire()
            try:
                completion = await self._send(request, client)
            except RateLimitError as error:
                self.stats.rate_limited += 1
                await throttle.release(started, ok=False, rate_limited=error)
                rate_limited += 1
                if rate_limited >= MAX_RATE_LIMITED_TRIES:
                    self.outcomes.reject(request, error)
                    return None
                continue
            except MistralError as error:
                await throttle.release(started, ok=False)
                if is_fatal(error):
                    raise
                if self.policy.should_retry(error, failures):
                    if not self._stopping:  # a stopping pool retries nothing
                        await asyncio.sleep(self.policy.delay(error, failures))
                    failures += 1
                    continue
                self.outcomes.reject(request, error)
                return None
            except BaseException:
                await throttle.release(started, ok=False)
                raise
            self.stats.requests_sent += 1
            # Kept before the next await: a stopping pool may cancel this task there.
            follow_up = self.outcomes.accept(request, completion)
            await throttle.release(started, ok=True)
            return follow_up
        return None  # stopped before this request was sent: it stays unfinished

    async def _send(self, request: PlannedRequest, client: AsyncMistralClient) -> Completion:
        """One attempt; while it is in flight, :meth:`stop` lets it finish."""
        task = asyncio.current_task()
        assert task is not None
        self._sending.add(task)
        try:
            return await client.complete(request.messages, **request.params)
        finally:
            self._sending.discard(task)

    def _cached(self, request: PlannedRequest) -> Completion | None:
        """Corrections may be cached from an earlier run (first attempts were looked up
        before the run, all at once)."""
        if self.cache is None or request.attempt == 0:
            return None
        try:
            return self.cache.get(request.key)
        except Exception:
            return None


def run_in_thread(
    work: Callable[[], Awaitable[Any]],
    *,
    tick: Callable[[], None],
    interval: float = 0.1,
    stop: Callable[[], None] | None = None,
    on_stop: Callable[[], None] | None = None,
) -> None:
    """Run the coroutine ``work()`` on a fresh event loop in a worker thread, calling
    ``tick()`` every ``interval`` seconds here.

    Ctrl-C here calls ``stop()`` on the loop (and ``on_stop()`` here, to say what happens)
    and waits for the work to wind down; without ``stop``, or at a second Ctrl-C, the work is
    cancelled. KeyboardInterrupt is re-raised once the thread has stopped."""
    state: dict[str, Any] = {}
    ready = threading.Event()
    # Set when the thread's work is over. Thread.join() interrupted by Ctrl-C can leave
    # is_alive() False while the thread still runs (CPython gh-90882), so it is not used.
    over = threading.Event()

    async def main() -> None:
        state["loop"] = asyncio.get_running_loop()
        state["task"] = asyncio.current_task()
        ready.set()
        await work()

    def target() -> None:
        try:
            asyncio.run(main())
        except asyncio.CancelledError:
            state["cancelled"] = True
        except BaseException as exc:
            state["error"] = exc
        finally:
            ready.set()
            over.set()

    def on_loop(callback: Callable[[], None]) -> None:
        ready.wait(5)
        loop = state.get("loop")
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed: the work is done
                loop.call_soon_threadsafe(callback)

    thread = threading.Thread(target=target, name="mistral-magic-apply", daemon=True)
    thread.start()
    try:
        _wait(over, interval, tick)
    except KeyboardInterrupt:
        try:
            if stop is None:
                raise
            on_loop(stop)
            if on_stop is not None:
                on_stop()
            _wait(over, interval, tick)
        except KeyboardInterrupt:
            task = state.get("task")
            if task is not None:
                on_loop(task.cancel)
            over.wait(10)
        tick()
        raise
    if "error" in state:
        raise state["error"]


def _wait(over: threading.Event, interval: float, tick: Callable[[], None]) -> None:
    while not over.wait(interval):
        tick()
    tick()
