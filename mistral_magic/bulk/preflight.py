"""Before a run: how many requests, the exact prompt tokens, the estimated cost; and a
confirmation when the estimate is above ``Mistral.confirm_above`` (the setting every face
asks by; :data:`APPLY_CONFIRM_ABOVE` while it is None).

Prompt tokens are counted with Mistral's v3 tokenizer (exact for mistral-large-2407, close
for other Mistral models). Reply lengths are unknown before the run, so the estimate assumes
:data:`EXPECTED_REPLY_TOKENS` per reply (capped by max_tokens) and also gives the ceiling:
every reply using all of max_tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..engine.usage import PriceLookup, format_cost
from .outcomes import ApplyCancelled

if TYPE_CHECKING:
    from .requests import PlannedRequest

EXPECTED_REPLY_TOKENS = 200
#: USD above which a job asks before it starts when ``Mistral.confirm_above`` is None (its
#: default): one question is never asked about, but a job of thousands of rows may cost more
#: than its author thinks.
APPLY_CONFIRM_ABOVE = 1.0


@dataclass
class Estimate:
    model: str
    requests: int
    rows: int
    cached_rows: int
    shared_rows: int  # rows answered by another row's identical request
    skipped_rows: int  # rows with nothing to send (all fields missing)
    prompt_tokens: int
    exact: bool
    max_tokens: int | None
    input_cost: float | None
    expected_output_cost: float | None
    max_output_cost: float | None
    price_factor: float = 1.0

    @property
    def cost(self) -> float | None:
        """The expected total: exact input plus the assumed reply lengths."""
        if self.input_cost is None or self.expected_output_cost is None:
            return None
        return self.input_cost + self.expected_output_cost

    @property
    def ceiling(self) -> float | None:
        if self.input_cost is None or self.max_output_cost is None:
            return None
        return self.input_cost + self.max_output_cost

    def describe(self) -> str:
        kind = "exact" if self.exact else "estimated"
        notes = [
            f"{n:,} {what}"
            for n, what in (
                (self.cached_rows, "cached"),
                (self.shared_rows, "duplicates"),
                (self.skipped_rows, "empty, not sent"),
            )
            if n
        ]
        rows = f" ({self.rows:,} rows: {', '.join(notes)})" if notes else ""
        text = (
            f"{self.requests:,} requests to {self.model}{rows} · {self.prompt_tokens:,} prompt "
            f"tokens ({kind})"
        )
        if not self.requests:
            return text
        if self.cost is None:
            return text + f" · price unknown ({self.model} is not in the prices table)"
        reply = min(EXPECTED_REPLY_TOKENS, self.max_tokens or EXPECTED_REPLY_TOKENS)
        text += (
            f" · estimated cost {format_cost(self.cost)} ({format_cost(self.input_cost)} input "
            f"+ ~{format_cost(self.expected_output_cost)} output at ~{reply} tokens a reply"
        )
        if self.ceiling is not None:
            text += f"; at most {format_cost(self.ceiling)} with max_tokens={self.max_tokens:,}"
        text += ")"
        if self.price_factor != 1.0:
            text += f" · batch price ({self.price_factor:.0%} of the normal price)"
        return text


def estimate(
    requests: Sequence[PlannedRequest],
    *,
    model: str,
    price: PriceLookup,
    max_tokens: int | None,
    rows: int,
    cached_rows: int,
    skipped_rows: int,
    price_factor: float = 1.0,
) -> Estimate:
    from ..context.budget import count_request_tokens, is_exact

    prompt_tokens = sum(count_request_tokens(r.body["messages"], model) for r in requests)
    rates = price(model)
    reply = min(EXPECTED_REPLY_TOKENS, max_tokens or EXPECTED_REPLY_TOKENS)
    input_cost = expected = ceiling = None
    if rates is not None:
        per_token_in = rates[0] * price_factor / 1_000_000
        per_token_out = rates[1] * price_factor / 1_000_000
        input_cost = prompt_tokens * per_token_in
        expected = len(requests) * reply * per_token_out
        if max_tokens:
            ceiling = len(requests) * max_tokens * per_token_out
    answered_rows = sum(len(r.rows) for r in requests)
    return Estimate(
        model=model,
        requests=len(requests),
        rows=rows,
        cached_rows=cached_rows,
        shared_rows=answered_rows - len(requests),
        skipped_rows=skipped_rows,
        prompt_tokens=prompt_tokens,
        exact=is_exact(model),
        max_tokens=max_tokens,
        input_cost=input_cost,
        expected_output_cost=expected,
        max_output_cost=ceiling,
        price_factor=price_factor,
    )


def check_budget(found: Estimate, budget: float | None, spent: float) -> None:
    """``Mistral.session_budget`` before a run, as for every other request: a run whose
    ceiling (every reply at max_tokens) would take the session past its budget does not
    start (:class:`~mistral_magic.engine.guard.CostRefused`), and nothing is sent."""
    from ..engine.guard import CostRefused

    if budget is None or not found.requests:
        return
    ceiling = found.ceiling
    if ceiling is None:
        why = (
            f"{found.model} has no price (it is not in the prices table)"
            if found.cost is None
            else "without max_tokens its replies have no ceiling"
        )
        raise CostRefused(
            f"Not started: {why}, so Mistral.session_budget (${budget:g}) cannot be kept. "
            "Give the model a price in Mistral.prices, or pass max_tokens."
        )
    if spent + ceiling > budget:
        raise CostRefused(
            f"Not started: {found.requests:,} requests could cost up to "
            f"{format_cost(ceiling)}, which would take the session past its budget "
            f"(Mistral.session_budget, ${budget:g}; {format_cost(spent)} spent so far). "
            "Lower max_tokens, send fewer rows, or raise the budget."
        )


def confirm_threshold(confirm_above: float | None) -> float:
    """The estimate above which a job asks first: ``Mistral.confirm_above``, the one setting
    every face asks by, else :data:`APPLY_CONFIRM_ABOVE`."""
    return APPLY_CONFIRM_ABOVE if confirm_above is None else confirm_above


def confirm(
    found: Estimate,
    *,
    threshold: float | None,
    ask: bool | None,
    prompt: Callable[[str], str] | None = None,
) -> None:
    """Ask before starting when ``ask`` is True, or when it is None and the estimate is above
    ``threshold``. Raises :class:`ApplyCancelled` unless the answer is yes."""
    if ask is False or not found.requests:
        return
    cost = found.cost
    if ask is None and (threshold is None or cost is None or cost <= threshold):
        return
    question = (
        f"Estimated cost {format_cost(cost)} for {found.requests:,} requests"
        + (f" (at most {format_cost(found.ceiling)})" if found.ceiling is not None else "")
        + ". Start? [y/N] "
    )
    try:
        answer = (prompt or input)(question)
    except (EOFError, OSError, NotImplementedError):  # no stdin (script, nbclient)
        answer = ""
    if answer.strip().lower() in ("y", "yes"):
        return
    why = "" if ask else f", above the ${threshold:g} threshold,"
    raise ApplyCancelled(
        f"Not started: the estimated cost is {format_cost(cost)}{why} and it was not "
        "confirmed. Answer y to start, pass confirm=False to skip the question, or raise the "
        "threshold with %config Mistral.confirm_above = 5.0."
    )
