"""The cost guard: before a request goes out, what it holds, its prompt tokens (exact, or
estimated) and its worst case — the prompt at the model's input price plus a reply of
``max_tokens`` at its output price — and what follows from the settings:

* ``Mistral.session_budget`` (USD): a request whose worst case would take the session's
  spending past it is refused, and nothing is sent;
* ``Mistral.confirm_above`` (USD): a request whose worst case is above it (or whose price is
  unknown) is sent only once the user confirmed it: each face asks its own way (a button, an
  ``input()`` prompt, a dialog in the sidebar) and shows :meth:`CostCheck.summary`.

Every face checks with :func:`check_cost` before it sends: ``Session.check_cost`` — in a
kernel, and in the server through the user's session (``MistralService.session(user)``,
before the sidebar's ``ChatHandler`` sends, and before inline completion). ``Session.answer``
refuses a request the check did not let through, so no kernel face can forget it. With tools,
each further round of the tool loop (an agent step among them) is checked against the budget
again before it is sent (:func:`round_guard`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..api.defaults import CONTEXT_WINDOW
from ..api.errors import MistralError
from .usage import format_cost

if TYPE_CHECKING:
    from ..api.types import Completion
    from ..config import Mistral
    from ..prices import Price
    from .prepare import PreparedRequest

Verdict = Literal["send", "confirm", "refuse"]
SEND: Verdict = "send"
CONFIRM: Verdict = "confirm"
REFUSE: Verdict = "refuse"
#: Labels of the context a confirmation lists before it says "and N more".
SHOWN_LABELS = 8


class CostRefused(MistralError):
    """Nothing was sent: the request would pass ``Mistral.session_budget``, or it needed a
    confirmation (``Mistral.confirm_above``) it did not get."""


@dataclass(frozen=True)
class CostCheck:
    """One request's cost before it is sent, and the verdict of the settings on it."""

    model: str
    prompt_tokens: int
    exact: bool
    reply_tokens: int  # the reply the worst case assumes: max_tokens, or the window's rest
    price: Price | None
    holds: tuple[str, ...] = ()
    spent: float = 0.0  # by this session so far (models with a price)
    unpriced: tuple[str, ...] = ()  # models this session used that have no price
    budget: float | None = None
    confirm_above: float | None = None
    verdict: Verdict = SEND
    reason: str = ""  # why it is refused or must be confirmed (one paragraph)
    notes: tuple[str, ...] = field(default=())

    @property
    def worst_case(self) -> float | None:
        """USD if the reply uses all of ``reply_tokens``; None when the price is unknown."""
        if self.price is None:
            return None
        return self.price.cost(self.prompt_tokens, self.reply_tokens)

    def summary(self) -> str:
        """What the request holds and costs, in one line."""
        count = "exact" if self.exact else "estimated"
        cost = (
            f"worst case {format_cost(self.worst_case)} (a {self.reply_tokens:,}-token reply "
            f"at {self.price.describe()})"
            if self.price is not None
            else f"price unknown ({self.model} is not in the prices table)"
        )
        text = f"{self.model} · {self.prompt_tokens:,} prompt tokens ({count}) · {cost}"
        if self.holds:
            text += f" · holds: {', '.join(self.holds)}"
        return text

    def question(self) -> str:
        """The question a terminal asks before sending."""
        return f"{self.reason}\n{self.summary()}\nSend it? [y/N] "

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "summary": self.summary(),
            "model": self.model,
            "prompt_tokens": self.prompt_tokens,
            "exact": self.exact,
            "reply_tokens": self.reply_tokens,
            "worst_case": self.worst_case,
            "worst_case_text": format_cost(self.worst_case),
            "price": self.price.to_json() if self.price is not None else None,
            "holds": list(self.holds),
            "spent": self.spent,
            "budget": self.budget,
            "confirm_above": self.confirm_above,
        }


def holds(prepared: PreparedRequest) -> tuple[str, ...]:
    """What a request carries, for people: the question, the earlier turns, the
    instructions, the context items (labels only) and the tools."""
    from .provenance import context_labels

    labels = context_labels(prepared)
    parts = ["the question", *labels[:SHOWN_LABELS]]
    if len(labels) > SHOWN_LABELS:
        parts.append(f"{len(labels) - SHOWN_LABELS} more")
    tools = len(prepared.params.get("tools") or ())
    if tools:
        parts.append(f"{tools} tool{'s' if tools != 1 else ''} (each round is another request)")
    return tuple(parts)


def limits_set(settings: Mistral, *, ask: bool = True) -> bool:
    """Whether the verdict on a request can be other than SEND: a ``session_budget``, or a
    ``confirm_above`` (when a confirmation can be asked). Without either, a face that only
    wants the verdict need not count the request's tokens (issue #12: the first question
    after ``%load_ext`` loads no tokenizer when its context fits by far)."""
    return settings.session_budget is not None or (ask and settings.confirm_above is not None)


def check_cost(
    prepared: PreparedRequest,
    settings: Mistral,
    *,
    spent: float = 0.0,
    unpriced: Sequence[str] = (),
    ask: bool = True,
) -> CostCheck:
    """The cost of ``prepared`` before it is sent, and whether to send, ask or refuse
    (``ask=False``: a request nobody can confirm, inline completion's, is only kept to the
    budget)."""
    return _verdict(
        settings,
        model=prepared.model,
        prompt_tokens=prepared.prompt_tokens,
        exact=prepared.exact_count,
        max_tokens=prepared.params.get("max_tokens"),
        window=prepared.window,
        also=prepared.other_names,
        holds=holds(prepared),
        spent=spent,
        unpriced=unpriced,
        ask=ask,
    )


def _verdict(
    settings: Mistral,
    *,
    model: str,
    prompt_tokens: int,
    exact: bool,
    max_tokens: int | None,
    window: int,
    also: Sequence[str],
    holds: tuple[str, ...],
    spent: float,
    unpriced: Sequence[str],
    ask: bool = True,
) -> CostCheck:
    # Without max_tokens a reply may fill the rest of the model's window: that is the worst.
    reply = max_tokens or max(0, window - prompt_tokens)
    check = CostCheck(
        model=model,
        prompt_tokens=prompt_tokens,
        exact=exact,
        reply_tokens=reply,
        price=settings.price_info(model, also),
        holds=holds,
        spent=spent,
        unpriced=tuple(unpriced),
        budget=settings.session_budget,
        confirm_above=settings.confirm_above if ask else None,
    )
    worst = check.worst_case
    budget = check.budget
    if budget is not None:
        refusal = _over_budget(check, worst, budget)
        if refusal:
            return _with(check, REFUSE, f"Not sent: {refusal}")
    limit = check.confirm_above
    if limit is not None and (worst is None or worst > limit):
        if worst is None:
            why = f"{model} has no price, so its cost is unknown"
        else:
            why = (
                f"its worst case, {format_cost(worst)}, is above Mistral.confirm_above (${limit:g})"
            )
        return _with(check, CONFIRM, f"This request needs your confirmation: {why}.")
    return check


def _over_budget(check: CostCheck, worst: float | None, budget: float) -> str:
    spent = check.spent
    if worst is None:
        return (
            f"{check.model} has no price (it is not in the prices table), so "
            f"Mistral.session_budget (${budget:g}) cannot be kept. Give it one in "
            f'Mistral.prices (e.g. {{"{check.model}": [input, output]}}, USD per 1M tokens).'
        )
    if spent >= budget:
        return (
            f"this session has spent {format_cost(spent)}, which reaches its budget "
            f"(Mistral.session_budget, ${budget:g}). Raise the budget to go on."
        )
    if spent + worst > budget:
        return (
            f"this request could cost up to {format_cost(worst)} (a "
            f"{check.reply_tokens:,}-token reply), which would take the session past its "
            f"budget (Mistral.session_budget, ${budget:g}; {format_cost(spent)} spent so far). "
            "Lower max_tokens, send less context, or raise the budget."
        )
    return ""


def _with(check: CostCheck, verdict: Verdict, reason: str) -> CostCheck:
    from dataclasses import replace

    return replace(check, verdict=verdict, reason=reason)


RoundGuard = Callable[[list[dict[str, Any]], dict[str, Any], Sequence["Completion"]], None]


def round_guard(
    settings: Mistral,
    model: str,
    spent: float,
    *,
    window: int = CONTEXT_WINDOW,
    also: Sequence[str] = (),
    loop: str = "the tool loop",
) -> RoundGuard | None:
    """The check before each further request of a tool loop: the budget must still hold the
    rounds so far (by the server's usage) and the worst case of the next one. None without a
    budget. ``loop`` names the loop in the refusal ("the agent task": each agent step)."""
    if settings.session_budget is None:
        return None

    def guard(
        messages: list[dict[str, Any]], params: dict[str, Any], done: Sequence[Completion]
    ) -> None:
        from ..context.budget import count_request_tokens, is_exact

        used = 0.0
        for completion in done:
            usage = completion.usage
            price = settings.price_info(completion.model or model, (model, *also))
            if usage is not None and price is not None:
                used += price.cost(usage.prompt_tokens, usage.completion_tokens)
        prompt_tokens = count_request_tokens(messages, model, params.get("tools"))
        check = CostCheck(
            model=model,
            prompt_tokens=prompt_tokens,
            exact=is_exact(model),
            reply_tokens=params.get("max_tokens") or max(0, window - prompt_tokens),
            price=settings.price_info(model, also),
            spent=spent + used,
        )
        budget = settings.session_budget
        refusal = _over_budget(check, check.worst_case, budget) if budget is not None else ""
        if refusal:
            raise CostRefused(f"Stopped before request {len(done) + 1} of {loop}: {refusal}")

    return guard
