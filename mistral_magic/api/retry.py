"""When to retry, and how long to wait: one policy for the client and for ``bulk/``'s pool.

Exponential backoff with jitter, the server's ``Retry-After`` first, a bound on the number of
retries and on the total time spent waiting. Only what cannot have been billed or half-shown is
retried: 429, 5xx (502/503/504/500), a connection that could not be made, a stream that broke
off before any content. Never a read timeout (the server is working on it: asking again doubles
the cost) nor a 200 whose body is not the protocol (it may have been billed).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import (
    APIConnectionError,
    APITimeoutError,
    MistralError,
    RateLimitError,
    ServerError,
    StreamError,
)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Notice:
    """What the client is waiting for, for a face to show ("rate limited, retrying in 3 s")."""

    kind: str  # "rate_limited" | "server_error" | "connection" | "stream_broke"
    seconds: float  # how long until the next try
    attempt: int  # the retry about to be made (1 = the first retry)
    message: str


#: Called before each wait between tries. The async client awaits what it returns when that
#: is awaitable (e.g. a coroutine that writes the notice to a browser).
OnNotice = Callable[[Notice], Any]


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    backoff: float = 0.5  # first wait, doubled each attempt
    max_backoff: float = 8.0
    total_time: float = 90.0  # never wait past this much time since the first attempt

    def is_transient(self, error: MistralError) -> bool:
        """Could asking again help, and is it safe (nothing billed, nothing shown)?"""
        if isinstance(error, (RateLimitError, ServerError)):
            return error.status in RETRY_STATUSES
        if isinstance(error, APITimeoutError):
            return False
        return isinstance(error, (APIConnectionError, StreamError))

    def should_retry(self, error: MistralError, attempt: int) -> bool:
        """``attempt`` retries were made already: may another one follow?"""
        return attempt < self.max_retries and self.is_transient(error)

    def delay(self, error: MistralError | None, attempt: int) -> float:
        """Seconds to wait before retry ``attempt + 1``: Retry-After, else jittered backoff."""
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return float(retry_after)
        ceiling = min(self.max_backoff, self.backoff * (2**attempt))
        return random.uniform(ceiling / 2, ceiling)

    def next_wait(self, error: MistralError, attempt: int, elapsed: float) -> float | None:
        """The wait before the next try, or None to give up (not transient, out of retries, or
        the wait would pass ``total_time`` since the first try)."""
        if not self.should_retry(error, attempt):
            return None
        wait = self.delay(error, attempt)
        if elapsed + wait > self.total_time:
            return None
        return wait

    @staticmethod
    def notice(error: MistralError, wait: float, attempt: int) -> Notice:
        shown = f"{wait:.0f} s" if wait >= 1 else f"{wait:.1f} s"
        if isinstance(error, RateLimitError):
            return Notice("rate_limited", wait, attempt, f"rate limited, retrying in {shown}")
        if isinstance(error, ServerError):
            return Notice(
                "server_error",
                wait,
                attempt,
                f"the server answered HTTP {error.status}, retrying in {shown}",
            )
        if isinstance(error, StreamError):
            return Notice(
                "stream_broke",
                wait,
                attempt,
                f"the reply broke off before any text, asking again in {shown}",
            )
        return Notice(
            "connection", wait, attempt, f"could not reach the server, retrying in {shown}"
        )
