"""What each model can do, read from the server's ``GET /models`` rather than from a list in
our code.

La Plateforme's cards carry ``max_context_length``, ``capabilities`` (``function_calling``,
``vision``, ``completion_fim``, ``reasoning``, …), ``deprecation`` (a date),
``deprecation_replacement_model`` and ``aliases``; vLLM's carry only ``max_model_len``. A
model named by an alias (``codestral-latest``) finds the card that lists it.

Where the server says nothing the defaults are conservative (:data:`ASSUMED`): a 32,768-token
window (the schema's default for ``max_context_length``), no vision, no reasoning, no FIM —
so nothing is sent that the server may refuse — while tools stay allowed (the server is the
judge of a tool request; refusing it here would block models that can call tools). Whoever
runs the server can declare what its cards leave out (``Mistral.model_capabilities``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from .types import ModelInfo

#: The window assumed for a model whose card does not give one.
ASSUMED_WINDOW = 32768
#: What a card that says nothing is taken to mean (see the module's docstring).
ASSUMED: dict[str, bool] = {
    "function_calling": True,
    "vision": False,
    "completion_fim": False,
    "reasoning": False,
}
#: The names of the capabilities this package acts on, as the cards spell them.
CAPABILITIES = tuple(ASSUMED)
_DECLARABLE = frozenset({*CAPABILITIES, "max_context_length"})


@dataclass(frozen=True)
class Capabilities:
    """What one model can do: from its card, from a declaration, or assumed."""

    model: str  # the id as asked (may be an alias)
    window: int
    function_calling: bool
    vision: bool
    completion_fim: bool
    reasoning: bool
    card_id: str | None = None  # the card found for the model, if any
    #: The dated model behind the name asked for, as its card names it ("mistral-large-latest"
    #: -> "mistral-large-2512"): what its tokens are counted as.
    canonical: str = ""
    aliases: tuple[str, ...] = ()
    deprecation: str | None = None  # ISO date-time from the card
    replacement: str | None = None
    #: The capabilities (and ``max_context_length``) that are assumptions, not the server's
    #: word nor a declaration.
    assumed: tuple[str, ...] = ()
    #: Why the server's list said nothing about this model, when it did not.
    unknown_reason: str = ""
    #: The list could not be read this time (server down, key refused): the defaults are
    #: used without a word, and the list is asked for again with the next question.
    tentative: bool = False

    @property
    def listed(self) -> bool:
        """Whether the server's model list has a card for this model."""
        return self.card_id is not None

    @property
    def deprecation_date(self) -> date | None:
        return parse_date(self.deprecation)

    def deprecation_notice(self, today: date | None = None) -> str | None:
        """One line for a deprecated model, with its date and replacement; else None."""
        when = self.deprecation_date
        if when is None:
            return None
        today = today or date.today()
        verb = "was deprecated on" if when <= today else "is deprecated from"
        line = f"{self.model} {verb} {when.isoformat()}"
        if self.replacement:
            line += f"; the server names {self.replacement} as its replacement"
        return line + "."

    def assumption_notice(self) -> str | None:
        """One line when this model's window is a guess (no card, or a card without one),
        else None. (A vLLM card gives the window: its other abilities are the quiet
        defaults, which README's "Choosing a model" explains.)"""
        if "max_context_length" not in self.assumed or self.tentative:
            return None
        why = self.unknown_reason or "the server's card for it gives no context window"
        return (
            f"{self.model}: {why}; assuming a {self.window:,}-token window, tools allowed, "
            "no vision, no reasoning (Mistral.model_capabilities can declare them)."
        )

    def said(self, name: str) -> bool:
        """Whether capability ``name`` comes from the server or a declaration (not assumed)."""
        return name not in self.assumed


@dataclass
class ModelCatalog:
    """The cards of one server's ``GET /models``, found by id or alias."""

    cards: list[ModelInfo] = field(default_factory=list)
    #: Why there are no cards (the list could not be read), empty when it was read.
    unavailable: str = ""
    #: False when the list could not be read this time but may be later (not remembered).
    settled: bool = True

    def __post_init__(self) -> None:
        self._by_id = {card.id: card for card in self.cards}
        self._by_alias: dict[str, ModelInfo] = {}
        for card in self.cards:
            for alias in card.aliases:
                self._by_alias.setdefault(alias, card)

    @classmethod
    def from_payload(cls, payload: Any) -> ModelCatalog:
        cards = payload.get("data") if isinstance(payload, Mapping) else payload
        if not isinstance(cards, list):
            return cls(unavailable="the server's model list has no `data` array")
        return cls([ModelInfo.from_wire(c) for c in cards if isinstance(c, Mapping)])

    @classmethod
    def missing(cls, reason: str, *, settled: bool = True) -> ModelCatalog:
        return cls(unavailable=reason, settled=settled)

    def __iter__(self) -> Any:
        return iter(self.cards)

    def __len__(self) -> int:
        return len(self.cards)

    def find(self, model: str) -> ModelInfo | None:
        """The card of ``model``: its own, else the one that lists it as an alias."""
        return self._by_id.get(model) or self._by_alias.get(model)

    def capabilities(
        self, model: str, declared: Mapping[str, Mapping[str, Any]] | None = None
    ) -> Capabilities:
        """What ``model`` can do: the card's word, then ``declared`` (a setting: model id
        -> {capability: value}) over it, then :data:`ASSUMED` for what neither says."""
        card = self.find(model)
        said: dict[str, Any] = {}
        if card is not None:
            if card.max_context_length:
                said["max_context_length"] = card.max_context_length
            for name in CAPABILITIES:
                value = card.capability(name)
                if value is not None:
                    said[name] = value
        for key in _declared_keys(model, card):
            said.update(_clean_declaration((declared or {}).get(key)))
        assumed = tuple(name for name in ("max_context_length", *CAPABILITIES) if name not in said)
        reason = ""
        if card is None:
            reason = self.unavailable or "the server's model list has no card for it"
        return Capabilities(
            model=model,
            window=int(said.get("max_context_length") or ASSUMED_WINDOW),
            function_calling=bool(said.get("function_calling", ASSUMED["function_calling"])),
            vision=bool(said.get("vision", ASSUMED["vision"])),
            completion_fim=bool(said.get("completion_fim", ASSUMED["completion_fim"])),
            reasoning=bool(said.get("reasoning", ASSUMED["reasoning"])),
            card_id=card.id if card is not None else None,
            canonical=_canonical(card) if card is not None else model,
            aliases=tuple(card.aliases) if card is not None else (),
            deprecation=card.deprecation if card is not None else None,
            replacement=card.replacement if card is not None else None,
            assumed=assumed,
            unknown_reason=reason,
            tentative=card is None and not self.settled,
        )


def _canonical(card: ModelInfo) -> str:
    """The card's own name for the model when it is one of its names (La Plateforme lists
    ``name: codestral-2508`` on the ``codestral-latest`` card), else its id."""
    if card.name and card.name in (card.id, *card.aliases):
        return card.name
    return card.id


def _declared_keys(model: str, card: ModelInfo | None) -> Iterable[str]:
    """A declaration applies under the card's id, any of its aliases, or the name asked
    (most specific last, so it wins)."""
    if card is not None:
        yield card.id
        yield from card.aliases
    yield model


def _clean_declaration(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        return {}
    return {k: v for k, v in value.items() if k in _DECLARABLE}


def check_declarations(value: Any) -> dict[str, dict[str, Any]]:
    """``Mistral.model_capabilities`` checked: model id -> {capability: bool, or
    ``max_context_length``: a positive int}. Raises ValueError with the reason."""
    if not isinstance(value, Mapping):
        raise ValueError("model_capabilities must be a dict: model id -> {capability: value}")
    checked: dict[str, dict[str, Any]] = {}
    for model, declared in value.items():
        if not isinstance(model, str) or not isinstance(declared, Mapping):
            raise ValueError(
                f"model_capabilities[{model!r}] must be a dict such as {{'vision': True}}"
            )
        for key, flag in declared.items():
            if key not in _DECLARABLE:
                known = ", ".join(sorted(_DECLARABLE))
                raise ValueError(f"unknown capability {key!r} for {model!r}: use {known}")
            if key == "max_context_length":
                if isinstance(flag, bool) or not isinstance(flag, int) or flag < 1:
                    raise ValueError(f"max_context_length of {model!r} must be a positive int")
            elif not isinstance(flag, bool):
                raise ValueError(f"{key} of {model!r} must be True or False")
        checked[model] = dict(declared)
    return checked


def parse_date(value: str | None) -> date | None:
    """The date of an ISO date or date-time (``2024-11-30T12:00:00Z``), or None."""
    if not value:
        return None
    text = value.strip()
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        try:
            return date.fromisoformat(text[:10])
        except ValueError:
            return None
