"""Token and cost accounting, from the usage the server reports."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..api.types import Usage

PriceLookup = Callable[[str], "tuple[float, float] | None"]


def estimate_cost(model: str, prompt: int, completion: int, price: PriceLookup) -> float | None:
    """USD for the given token counts, or None when the model's price is unknown."""
    rates = price(model)
    if rates is None:
        return None
    return (prompt * rates[0] + completion * rates[1]) / 1_000_000


def format_cost(cost: float | None) -> str:
    if cost is None:
        return "price unknown"
    if cost < 0.01:
        return f"${cost:.4f}"
    return f"${cost:.2f}"


@dataclass
class ModelTally:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    price_factor: float = 1.0  # 0.5 for Batch API jobs

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class UsageLedger:
    """What this session spent, per model (recorded from the main thread and the chat
    panel's thread alike: every change is locked)."""

    def __init__(self, price: PriceLookup) -> None:
        self._price = price
        self.by_model: dict[str, ModelTally] = {}
        self._lock = threading.Lock()

    def record(self, model: str, usage: Usage | None) -> None:
        with self._lock:
            tally = self.by_model.setdefault(model, ModelTally())
            tally.requests += 1
            if usage is not None:
                tally.prompt_tokens += usage.prompt_tokens
                tally.completion_tokens += usage.completion_tokens

    def record_bulk(
        self, model: str, requests: int, prompt: int, completion: int, price_factor: float = 1.0
    ) -> None:
        """A data job's totals (``apply``/``map``); Batch API jobs get their own row."""
        key = model if price_factor == 1.0 else f"{model} (batch)"
        with self._lock:
            tally = self.by_model.setdefault(key, ModelTally(price_factor=price_factor))
            tally.requests += requests
            tally.prompt_tokens += prompt
            tally.completion_tokens += completion

    def cost(self, model: str) -> float | None:
        tally = self.by_model.get(model, ModelTally())
        base = model.removesuffix(" (batch)")
        cost = estimate_cost(base, tally.prompt_tokens, tally.completion_tokens, self._price)
        return None if cost is None else cost * tally.price_factor

    def totals(self) -> tuple[int, int, int, float | None]:
        """(requests, prompt tokens, completion tokens, estimated cost) over every model;
        the cost is None when a model's price is unknown."""
        with self._lock:
            tallies = list(self.by_model.items())
        cost: float | None = 0.0
        for model, _ in tallies:
            one = self.cost(model)
            cost = None if one is None or cost is None else cost + one
        return (
            sum(t.requests for _, t in tallies),
            sum(t.prompt_tokens for _, t in tallies),
            sum(t.completion_tokens for _, t in tallies),
            cost,
        )

    def summary_markdown(self) -> str:
        with self._lock:
            tallies = sorted(self.by_model.items())
        if not tallies:
            return "No requests yet in this session."
        rows = [
            "| model | requests | prompt tokens | completion tokens | estimated cost |",
            "|---|---:|---:|---:|---:|",
        ]
        total: float | None = 0.0
        for model, t in tallies:
            cost = self.cost(model)
            total = None if cost is None or total is None else total + cost
            rows.append(
                f"| {model} | {t.requests} | {t.prompt_tokens:,} | {t.completion_tokens:,} "
                f"| {format_cost(cost)} |"
            )
        rows.append("")
        rows.append(f"Total estimated cost: {format_cost(total)} (from the server's usage counts).")
        return "\n".join(rows)

    def spent(self) -> tuple[float, list[str]]:
        """USD spent so far by the models with a price, and the models without one (whose
        spending cannot be counted)."""
        with self._lock:
            models = list(self.by_model)
        total, unknown = 0.0, []
        for model in models:
            cost = self.cost(model)
            if cost is None:
                unknown.append(model)
            else:
                total += cost
        return total, unknown


#: Where a kernel session keeps :class:`InlineUsageReport` (``Session.remember``).
INLINE_USAGE = "inline_usage"
_MAX_COUNT = 10**12  # no honest count is larger: anything above is not a count


@dataclass(frozen=True)
class InlineUsageReport:
    """The Jupyter server's count of this user's inline completions (they are asked by the
    server, not the kernel), as the notebook page last passed it to the kernel: with the
    kernel's scope read, once the kernel is idle after a run (``kernel_entry``)."""

    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    received: float  # time.time() when the kernel got it

    @classmethod
    def from_wire(cls, data: Any, received: float) -> InlineUsageReport:
        """From the page's JSON (the server's ``usage.session``); ``ValueError`` if it is
        not one: counts are whole numbers, the cost a number or null."""
        if not isinstance(data, dict):
            raise ValueError("the inline usage is not a JSON object")
        counts = []
        for name in ("requests", "prompt_tokens", "completion_tokens"):
            value = data.get(name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"the inline usage's {name} is not a whole number")
            if not 0 <= value <= _MAX_COUNT:
                raise ValueError(f"the inline usage's {name} is out of range")
            counts.append(value)
        cost = data.get("cost")
        if cost is not None and (
            isinstance(cost, bool)
            or not isinstance(cost, (int, float))
            or not 0 <= cost <= _MAX_COUNT
        ):
            raise ValueError("the inline usage's cost is not a number of dollars")
        return cls(*counts, None if cost is None else float(cost), received)

    def summary(self) -> str:
        """One line for ``%mistral usage`` (plain text: numbers only, nothing quoted)."""
        import time

        plural = "" if self.requests == 1 else "s"
        when = time.strftime("%H:%M:%S", time.localtime(self.received))
        return (
            f"Inline completions (ghost text, asked by the Jupyter server for you since it "
            f"started): {self.requests:,} request{plural}, {self.completion_tokens:,} "
            f"completion tokens, {self.prompt_tokens:,} prompt tokens, estimated cost "
            f"{format_cost(self.cost)} — as of {when}, when the notebook page last passed "
            "them to this kernel (after a run). The tooltip of the Mistral item of the "
            "status bar, and the Mistral sidebar, show them live."
        )
