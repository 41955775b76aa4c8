"""Model prices: one data file, ``prices.json`` beside this module, with the date and the
source of every price (secondary sources marked), per model id and alias.

A model that is not in the file has no price: cost estimates then say "price unknown"
rather than guess from a similar name. ``Mistral.prices`` (USD per 1M tokens, ``[input,
output]`` per model id) overrides the file, e.g. ``{"mistral-large-2407": [0, 0]}`` for open
weights served by your own vLLM.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

DATA_FILE = Path(__file__).with_name("prices.json")
SECONDARY_MARK = "⚠"


@dataclass(frozen=True)
class Price:
    """What one model costs, and where that figure comes from."""

    model: str
    input: float  # USD per 1M prompt tokens
    output: float  # USD per 1M completion tokens
    name: str = ""
    source: str = ""  # who says so, in a few words
    about: str = ""  # the source in full (what it is, where it is)
    date: str = ""  # when the source said so
    secondary: bool = False  # not Mistral's own statement
    overridden: bool = False  # from Mistral.prices

    @property
    def rates(self) -> tuple[float, float]:
        return self.input, self.output

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1_000_000

    def describe(self) -> str:
        """``$0.5 / $1.5 per 1M tokens (Mistral's model pages, 2026-08-21)``; ``⚠`` marks a
        secondary source."""
        figures = f"${self.input:g} / ${self.output:g} per 1M tokens in / out"
        if self.overridden:
            return f"{figures} (Mistral.prices)"
        mark = f"{SECONDARY_MARK} " if self.secondary else ""
        return f"{figures} ({mark}{self.source}, {self.date})"

    def to_json(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "output": self.output,
            "per": "1M tokens, USD",
            "source": "Mistral.prices" if self.overridden else self.source,
            "date": self.date,
            "secondary": self.secondary,
        }


class PriceTable:
    """The prices of the data file, by model id (case-insensitive)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.checked = str(data.get("checked", ""))
        sources = data.get("sources") or {}
        self._by_id: dict[str, Price] = {}
        for entry in data.get("models") or []:
            source = sources.get(entry.get("source"), {})
            rates = entry["price"]
            for model_id in entry["ids"]:
                self._by_id[model_id.lower()] = Price(
                    model=model_id,
                    input=float(rates[0]),
                    output=float(rates[1]),
                    name=str(entry.get("name", "")),
                    source=str(source.get("label", entry.get("source", ""))),
                    about=str(source.get("title", "")),
                    date=str(source.get("date", self.checked)),
                    secondary=bool(source.get("secondary", False)),
                )

    @classmethod
    @functools.cache
    def default(cls) -> PriceTable:
        """The table of the package's data file (read once)."""
        return cls(json.loads(DATA_FILE.read_text(encoding="utf-8")))

    def __contains__(self, model: str) -> bool:
        return model.lower() in self._by_id

    def ids(self) -> list[str]:
        return sorted(self._by_id)

    def lookup(
        self,
        model: str,
        overrides: Mapping[str, Any] | None = None,
        also: Sequence[str] = (),
    ) -> Price | None:
        """The price of ``model``: the override if there is one, else the file's, else
        None (unknown). ``also``: the model's other names, as the server's model card gives
        them (the dated model behind an alias, the aliases of a dated model), tried in turn
        when ``model`` itself has no price: a ``*-latest`` name the file does not list is
        priced as the model it stands for."""
        for name in (model, *(n for n in also if n and n.lower() != model.lower())):
            found = self._one(name, overrides)
            if found is not None:
                return found if found.model == model else replace(found, model=model)
        return None

    def _one(self, model: str, overrides: Mapping[str, Any] | None) -> Price | None:
        if overrides:
            rates = _rates(overrides.get(model, overrides.get(model.lower())))
            if rates is not None:
                return Price(model, rates[0], rates[1], overridden=True)
        return self._by_id.get(model.lower())


def _rates(entry: Any) -> tuple[float, float] | None:
    if not isinstance(entry, list | tuple) or len(entry) != 2:
        return None
    try:
        return float(entry[0]), float(entry[1])
    except (TypeError, ValueError):
        return None
