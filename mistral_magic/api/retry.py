"""When to retry, and how long to wait: exponential backoff with jitter, Retry-After first."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .errors import APIConnectionError, APITimeoutError, MistralError, RateLimitError, ServerError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    backoff: float = 0.5  # first wait, doubled each attempt
    max_backoff: float = 8.0
    total_time: float = 90.0  # never wait past this much time since the first attempt

    def should_retry(self, error: MistralError, attempt: int) -> bool:
        if attempt >= self.max_retries:
            return False
        if isinstance(error, (RateLimitError, ServerError)):
            return error.status in RETRY_STATUSES
        # A read timeout means the server is working on it; asking again doubles the cost.
        return isinstance(error, APIConnectionError) and not isinstance(error, APITimeoutError)

    def should_retry_stream(self, attempt: int) -> bool:
        """A stream that broke before delivering anything may be asked for again."""
        return attempt < self.max_retries

    def delay(self, error: MistralError, attempt: int) -> float:
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return float(retry_after)
        ceiling = min(self.max_backoff, self.backoff * (2**attempt))
        return random.uniform(ceiling / 2, ceiling)
