"""Settings: the ``Mistral`` traitlets Configurable, defaults from the environment.

``%config Mistral.temperature = 0.2`` in a notebook, ``c.Mistral.model = "..."`` in
ipython_config.py or jupyter_server_config.py. The API key is read from MISTRAL_API_KEY only:
it is never a trait, so it cannot end up in a config dump or a notebook.
"""

from __future__ import annotations

import os
from typing import Any

from traitlets import Bool, CaselessStrEnum, Dict, Float, Int, Unicode, default, validate
from traitlets.config import Configurable

from .api.defaults import CONTEXT_WINDOW, DEFAULT_BASE_URL, DEFAULT_MODEL

# USD per 1M tokens (input, output). Sources: mistral-api.md §6 (2407 from 2024-09-17) and
# Mistral's pricing for the other ids. Models missing here show "cost unknown".
DEFAULT_PRICES: dict[str, list[float]] = {
    "mistral-large-2407": [2.0, 6.0],
    "mistral-large-2411": [2.0, 6.0],
    "mistral-large-instruct-2407": [2.0, 6.0],
    "mistral-large-latest": [0.5, 1.5],
    "mistral-large-2512": [0.5, 1.5],
    "mistral-small-latest": [0.1, 0.3],
}


class Mistral(Configurable):
    """Settings of mistral-magic (the magics, the chat panel and the server extension)."""

    model = Unicode(help="Model id (env MISTRAL_MODEL).").tag(config=True)
    base_url = Unicode(help="API root including /v1 (env MISTRAL_BASE_URL).").tag(config=True)
    dialect = CaselessStrEnum(
        ["auto", "mistral", "openai"],
        help="Wire dialect: 'mistral' (La Plateforme), 'openai' (vLLM) or 'auto' by host "
        "(env MISTRAL_DIALECT).",
    ).tag(config=True)
    temperature = Float(
        0.3, allow_none=True, help="Sampling temperature (0 to 1.5); None = server default."
    ).tag(config=True)
    top_p = Float(None, allow_none=True, help="Nucleus sampling; None = server default.").tag(
        config=True
    )
    max_tokens = Int(2048, allow_none=True, help="Longest reply, in tokens.").tag(config=True)
    context_budget = Int(
        8000, help="Tokens of notebook context sent with a question (cells, variables, error)."
    ).tag(config=True)
    history_budget = Int(
        12000, help="Tokens of earlier turns kept in a conversation; oldest dropped first."
    ).tag(config=True)
    timeout = Float(120.0, help="Seconds to wait for the server before giving up.").tag(config=True)
    max_retries = Int(3, help="Retries on 429, 5xx and connection errors.").tag(config=True)
    insert_code = Bool(True, help="Offer generated Python code as a new cell below.").tag(
        config=True
    )
    error_help = Bool(
        False, help="Show Explain / Fix buttons under new tracebacks (%mistral errors on|off)."
    ).tag(config=True)
    tools = Unicode(
        "",
        help="Tools offered with every question unless --tools says otherwise: '' (none), "
        "'notebook' (the built-in notebook tools), 'all', or comma-separated names.",
    ).tag(config=True)
    tools_context_budget = Int(
        3000,
        help="Tokens of up-front notebook context when tools are on (the model pulls the "
        "rest with the tools); the smaller of this and context_budget is used.",
    ).tag(config=True)
    max_tool_rounds = Int(
        8, help="Rounds of tool calls per question before the model must answer."
    ).tag(config=True)
    max_tool_seconds = Float(
        60.0, help="Seconds of tool run time per question before the model must answer."
    ).tag(config=True)
    tool_result_chars = Int(
        4000, help="Longest tool result the model gets, in characters (the rest is cut)."
    ).tag(config=True)
    prices = Dict(
        help="USD per 1M tokens per model, as [input, output]; used for cost estimates."
    ).tag(config=True)
    cache_dir = Unicode(
        help="Folder of the response cache (default $XDG_CACHE_HOME/mistral-magic, else "
        "~/.cache/mistral-magic)."
    ).tag(config=True)
    cache_max_mb = Float(512.0, help="Largest size of the response cache, in MB.").tag(config=True)
    confirm_cost_above = Float(
        1.0, allow_none=True, help="apply(): ask before a job estimated above this many USD."
    ).tag(config=True)
    batch_price_factor = Float(
        0.5, help="Batch API price as a fraction of the normal one (50% since 2025-07)."
    ).tag(config=True)

    @default("cache_dir")
    def _cache_dir_default(self) -> str:
        root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return os.path.join(root, "mistral-magic")

    @default("model")
    def _model_default(self) -> str:
        return os.environ.get("MISTRAL_MODEL") or DEFAULT_MODEL

    @default("base_url")
    def _base_url_default(self) -> str:
        return os.environ.get("MISTRAL_BASE_URL") or DEFAULT_BASE_URL

    @default("dialect")
    def _dialect_default(self) -> str:
        value = (os.environ.get("MISTRAL_DIALECT") or "auto").lower()
        return value if value in ("auto", "mistral", "openai") else "auto"

    @default("prices")
    def _prices_default(self) -> dict[str, list[float]]:
        return {k: list(v) for k, v in DEFAULT_PRICES.items()}

    @validate("temperature")
    def _check_temperature(self, proposal: dict[str, Any]) -> float | None:
        value = proposal["value"]
        if value is not None and not 0 <= value <= 1.5:
            raise ValueError(f"temperature must be between 0 and 1.5, not {value}")
        return value

    @validate("max_tool_rounds", "tool_result_chars", "max_tool_seconds")
    def _check_tool_limit(self, proposal: dict[str, Any]) -> Any:
        value = proposal["value"]
        if value < 0:
            raise ValueError(f"{proposal['trait'].name} must be 0 or more, not {value}")
        return value

    @validate("context_budget", "history_budget", "tools_context_budget")
    def _check_budget(self, proposal: dict[str, Any]) -> int:
        value = proposal["value"]
        if not 0 <= value <= CONTEXT_WINDOW:
            raise ValueError(f"a token budget must be between 0 and {CONTEXT_WINDOW}")
        return value

    def price(self, model: str) -> tuple[float, float] | None:
        entry = self.prices.get(model) or self.prices.get(model.lower())
        if not entry or len(entry) != 2:
            return None
        return float(entry[0]), float(entry[1])

    def effective(self) -> dict[str, Any]:
        """Every setting as it applies now, with the key shown only as set/missing."""
        values = {name: getattr(self, name) for name in sorted(self.class_own_traits())}
        values.pop("prices")
        key = os.environ.get("MISTRAL_API_KEY")
        values["api_key"] = (
            f"set (…{key[-4:]})"
            if key and len(key) >= 12
            else ("set" if key else "missing (set MISTRAL_API_KEY)")
        )
        return values
