"""The progress bar of a run: tqdm.auto (a widget bar in Jupyter, text elsewhere) with rate,
ETA, tokens and cost so far. Updated from the caller's thread only."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from ..engine.usage import format_cost
from .outcomes import RunStats

CostSoFar = Callable[[RunStats], "float | None"]


class Progress:
    """``total`` units (rows, or requests of a batch job), ``initial`` of them already done."""

    def __init__(
        self,
        stats: RunStats,
        cost: CostSoFar,
        *,
        enabled: bool,
        total: int,
        initial: int = 0,
        description: str = "mistral",
        unit: str = "row",
    ) -> None:
        self.stats = stats
        self.cost = cost
        self._bar: Any = None
        self._shown = initial
        if enabled and total:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total,
                initial=initial,
                desc=description,
                unit=unit,
                file=sys.stderr,
                dynamic_ncols=True,
                mininterval=0.2,
            )

    def postfix(self) -> str:
        s = self.stats
        tokens = s.prompt_tokens + s.completion_tokens
        parts = [f"{tokens:,} tok", format_cost(self.cost(s))] if tokens else []
        if s.rows_cached:
            parts.append(f"{s.rows_cached:,} cached")
        if s.rows_failed:
            parts.append(f"{s.rows_failed:,} failed")
        if s.rate_limited:
            parts.append(f"{s.rate_limited:,}×429")
        return " · ".join(parts)

    def tick(self, *, done: int | None = None, status: str | None = None) -> None:
        """Move the bar to ``done`` (default: rows done so far) and refresh the postfix."""
        if self._bar is None:
            return
        target = self.stats.rows_done if done is None else done
        if target > self._shown:
            self._bar.update(target - self._shown)
            self._shown = target
        text = self.postfix() if status is None else f"{status} · {self.postfix()}"
        self._bar.set_postfix_str(text, refresh=False)

    def close(self, *, done: int | None = None) -> None:
        if self._bar is not None:
            self.tick(done=done)
            self._bar.close()
            self._bar = None
