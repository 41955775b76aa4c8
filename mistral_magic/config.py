"""Settings: the ``Mistral`` traitlets Configurable, defaults from the environment.

``%config Mistral.temperature = 0.2`` in a notebook, ``c.Mistral.model = "..."`` in
ipython_config.py or jupyter_server_config.py. The API key is read from MISTRAL_API_KEY only:
it is never a trait, so it cannot end up in a config dump or a notebook. The same goes for
Codestral's own key (MISTRAL_CODESTRAL_API_KEY), used for inline completion.

``model``, ``base_url`` and ``dialect`` follow their environment variables (MISTRAL_MODEL,
MISTRAL_BASE_URL, MISTRAL_DIALECT) until they are set: the environment is read each time they
are used, so a variable changed after ``%load_ext`` counts from the next request on. Every
setting is checked when it is set, with the reason when it cannot work.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traitlets import (
    Bool,
    CaselessStrEnum,
    Dict,
    Float,
    HasTraits,
    Int,
    TraitError,
    Unicode,
    default,
    validate,
)
from traitlets.config import Configurable

from .api.defaults import (
    CODESTRAL_BASE_URL,
    CONTEXT_WINDOW,
    DEFAULT_BASE_URL,
    DEFAULT_FIM_MODEL,
    DEFAULT_MAX_REPLY_CHARS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MODEL,
    DEFAULT_RETRY_BUDGET,
    DEFAULT_TIMEOUT,
)
from .prices import Price, PriceTable

if TYPE_CHECKING:
    from .api.model_cache import ModelListCache


def default_cache_dir() -> Path:
    """The user's cache folder: ``$MISTRAL_MAGIC_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/mistral-magic``, else ``~/.cache/mistral-magic``."""
    chosen = os.environ.get("MISTRAL_MAGIC_CACHE_DIR")
    if chosen:
        return Path(chosen)
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "mistral-magic"


#: The values of ``reasoning_effort`` (2026 API: none, minimal, low, medium, high, xhigh).
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")


class FromEnvironment:
    """A setting that, until it is set, reads its environment variable at every use (not once:
    traitlets would otherwise keep the first value it computed)."""

    name: str | None

    def __init__(self, *args: Any, env: str, fallback: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.env = env
        self.fallback = fallback

    def get(self, obj: HasTraits, cls: Any = None) -> Any:
        if obj is not None and self.name and not obj.trait_has_value(self.name):
            return (os.environ.get(self.env) or "").strip() or self.fallback
        return super().get(obj, cls)  # type: ignore[misc]


class EnvUnicode(FromEnvironment, Unicode):
    """A string setting that follows an environment variable until it is set."""


class EnvCaselessStrEnum(FromEnvironment, CaselessStrEnum):
    """A choice that follows an environment variable until it is set."""


class Mistral(Configurable):
    """Settings of mistral-magic (the magics, the chat panel and the server extension)."""

    model = EnvUnicode(
        env="MISTRAL_MODEL",
        fallback=DEFAULT_MODEL,
        help="Model id (until set: the environment variable MISTRAL_MODEL, read at each use).",
    ).tag(config=True)
    base_url = EnvUnicode(
        env="MISTRAL_BASE_URL",
        fallback=DEFAULT_BASE_URL,
        help="API root including /v1 (until set: MISTRAL_BASE_URL, read at each use).",
    ).tag(config=True)
    dialect = EnvCaselessStrEnum(
        ["auto", "mistral", "openai"],
        env="MISTRAL_DIALECT",
        fallback="auto",
        help="Wire dialect: 'mistral' (La Plateforme), 'openai' (vLLM) or 'auto': from what "
        "the server's GET /models says (until set: MISTRAL_DIALECT, read at each use).",
    ).tag(config=True)
    codestral_base_url = EnvUnicode(
        env="MISTRAL_CODESTRAL_BASE_URL",
        fallback="",
        help="API root (with /v1) of the Codestral server for inline completion by "
        "fill-in-the-middle; '' = https://codestral.mistral.ai/v1 when "
        "MISTRAL_CODESTRAL_API_KEY is set, else the base URL (until set: "
        "MISTRAL_CODESTRAL_BASE_URL, read at each use).",
    ).tag(config=True)
    codestral_model = Unicode(
        DEFAULT_FIM_MODEL, help="Model of inline completion by fill-in-the-middle."
    ).tag(config=True)
    inline_max_tokens = Int(
        64, help="Longest inline completion (ghost text), in tokens: a line or a small block."
    ).tag(config=True)
    inline_prefix_chars = Int(
        8000,
        help="Code before the cursor sent with an inline completion, in characters (earlier "
        "cells, then the cell up to the cursor; the nearest is kept).",
    ).tag(config=True)
    inline_suffix_chars = Int(
        2000,
        help="Code after the cursor sent with an inline completion, in characters (the rest "
        "of the cell, then the following cells; the nearest is kept).",
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
    timeout = Float(
        DEFAULT_TIMEOUT,
        help="Seconds without progress before a request fails: no answer yet, or a streamed "
        "reply with no new content (keep-alives do not count). A reply that keeps streaming "
        "is never cut; a timed-out request is not sent again.",
    ).tag(config=True)
    max_retries = Int(DEFAULT_MAX_RETRIES, help="Retries on 429, 5xx and connection errors.").tag(
        config=True
    )
    retry_budget = Float(
        DEFAULT_RETRY_BUDGET,
        help="Longest time one request spends waiting between retries, in seconds (a "
        "Retry-After beyond it is not waited for).",
    ).tag(config=True)
    max_reply_chars = Int(
        DEFAULT_MAX_REPLY_CHARS,
        help="Longest reply kept, in characters; a longer one is cut there with a note and its "
        "stream closed (a 128k-token reply is about 500,000 characters).",
    ).tag(config=True)
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
        help="USD per 1M tokens per model id, as [input, output]: overrides the prices "
        "table (mistral_magic/prices.json, dated and sourced); a model in neither has no "
        "price ('price unknown').",
    ).tag(config=True)
    reasoning_effort = CaselessStrEnum(
        list(REASONING_EFFORTS),
        default_value=None,
        allow_none=True,
        help="How hard a reasoning model thinks: " + ", ".join(REASONING_EFFORTS) + "; None "
        "= the server's default. Sent only to models whose card says they reason (other "
        "servers and models refuse the field).",
    ).tag(config=True)
    model_capabilities = Dict(
        help="What the server's model cards leave out (vLLM's give only the window), per "
        "model id: e.g. {'pixtral-12b': {'vision': True}}. Keys: function_calling, vision, "
        "completion_fim, reasoning (True/False), max_context_length (tokens). Wins over the "
        "card.",
    ).tag(config=True)
    cache_dir = Unicode(
        help="Folder of the response cache and of the kept GET /models answers (default "
        "$MISTRAL_MAGIC_CACHE_DIR, else $XDG_CACHE_HOME/mistral-magic, else "
        "~/.cache/mistral-magic)."
    ).tag(config=True)
    models_cache_ttl = Float(
        86400.0,
        help="How long a server's GET /models answer (its dialect and model cards) is kept "
        "on disk for later kernels, in seconds, per base URL (never the key; servers on this "
        "machine are always asked); 0 = asked once per process.",
    ).tag(config=True)
    cache_max_mb = Float(512.0, help="Largest size of the response cache, in MB.").tag(config=True)
    confirm_above = Float(
        None,
        allow_none=True,
        help="Ask before sending a request whose worst case (its prompt, and a reply of "
        "max_tokens) costs more than this many USD; None (the default) never asks. apply() "
        "asks before a job estimated above it (above $1 while it is None).",
    ).tag(config=True)
    session_budget = Float(
        None,
        allow_none=True,
        help="USD this session may spend (every face and apply(), by the server's usage at "
        "the prices table's rates): a request whose worst case would pass it is refused and "
        "nothing is sent. None (the default): no budget.",
    ).tag(config=True)
    instructions = Unicode(
        "",
        help="Your standing instructions, added to the system message of every request "
        "(with the AGENTS.md of the notebook's folder or a parent).",
    ).tag(config=True)
    agents_file = Bool(
        True, help="Add the nearest AGENTS.md (notebook folder, then parents) to every request."
    ).tag(config=True)
    instructions_max_chars = Int(
        8000,
        help="Longest project instructions sent (Mistral.instructions and AGENTS.md, each), "
        "in characters; the rest is cut with a note.",
    ).tag(config=True)
    batch_price_factor = Float(
        0.5, help="Batch API price as a fraction of the normal one (50% since 2025-07)."
    ).tag(config=True)

    @default("cache_dir")
    def _cache_dir_default(self) -> str:
        return str(default_cache_dir())

    # Dynamic defaults (never cached: see FromEnvironment) keep traitlets from storing a
    # static initial value, which would count as "set".
    @default("model")
    def _model_default(self) -> str:
        return os.environ.get("MISTRAL_MODEL") or DEFAULT_MODEL

    @default("base_url")
    def _base_url_default(self) -> str:
        return os.environ.get("MISTRAL_BASE_URL") or DEFAULT_BASE_URL

    @default("dialect")
    def _dialect_default(self) -> str:
        return os.environ.get("MISTRAL_DIALECT") or "auto"

    @default("codestral_base_url")
    def _codestral_base_url_default(self) -> str:
        return os.environ.get("MISTRAL_CODESTRAL_BASE_URL") or ""

    @validate("base_url", "codestral_base_url")
    def _check_base_url(self, proposal: dict[str, Any]) -> str:
        from .api.urls import base_url_problem

        value = proposal["value"]
        problem = base_url_problem(value) if value else None
        if problem is not None:
            raise TraitError(f"Mistral.{proposal['trait'].name}: {problem}.")
        return value

    @validate("timeout", "retry_budget")
    def _check_seconds(self, proposal: dict[str, Any]) -> float:
        value, name = proposal["value"], proposal["trait"].name
        positive = name == "timeout"
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            bound = "above 0" if positive else "0 or more"
            raise TraitError(f"Mistral.{name} must be a number of seconds {bound}, not {value}.")
        return value

    @validate("confirm_above", "session_budget")
    def _check_dollars(self, proposal: dict[str, Any]) -> float | None:
        value, name = proposal["value"], proposal["trait"].name
        if value is not None and (not math.isfinite(value) or value < 0):
            raise TraitError(f"Mistral.{name} must be an amount in USD, 0 or more (or None).")
        return value

    @validate(
        "max_retries",
        "max_reply_chars",
        "inline_max_tokens",
        "inline_prefix_chars",
        "inline_suffix_chars",
    )
    def _check_count(self, proposal: dict[str, Any]) -> int:
        value, name = proposal["value"], proposal["trait"].name
        least = 1 if name in ("max_reply_chars", "inline_max_tokens") else 0
        if value < least:
            raise TraitError(f"Mistral.{name} must be {least} or more, not {value}.")
        return value

    @validate("temperature")
    def _check_temperature(self, proposal: dict[str, Any]) -> float | None:
        value = proposal["value"]
        if value is not None and not 0 <= value <= 1.5:
            raise ValueError(f"temperature must be between 0 and 1.5, not {value}")
        return value

    @validate("max_tool_rounds", "tool_result_chars", "max_tool_seconds", "instructions_max_chars")
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

    @validate("model_capabilities")
    def _check_capabilities(self, proposal: dict[str, Any]) -> dict[str, Any]:
        from .api.models import check_declarations

        try:
            return check_declarations(proposal["value"])
        except ValueError as error:
            raise TraitError(f"Mistral.model_capabilities: {error}.") from None

    @validate("prices")
    def _check_prices(self, proposal: dict[str, Any]) -> dict[str, Any]:
        for model, entry in proposal["value"].items():
            ok = isinstance(entry, list | tuple) and len(entry) == 2
            if not ok or not all(
                isinstance(x, int | float) and not isinstance(x, bool) and x >= 0 for x in entry
            ):
                raise TraitError(
                    f"Mistral.prices[{model!r}] must be [input, output] in USD per 1M tokens "
                    f"(two numbers, 0 or more), not {entry!r}."
                )
        return proposal["value"]

    def price(self, model: str, also: Sequence[str] = ()) -> tuple[float, float] | None:
        """USD per 1M tokens (input, output) of ``model``, or None when it has no price."""
        found = self.price_info(model, also)
        return None if found is None else found.rates

    def price_info(self, model: str, also: Sequence[str] = ()) -> Price | None:
        """The price of ``model`` with its date and source (``Mistral.prices`` first); ``also``
        the model's other names from its card (see :meth:`PriceTable.lookup`)."""
        return PriceTable.default().lookup(model, self.prices, also)

    @classmethod
    def class_get_trait_help(
        cls, trait: Any, inst: HasTraits | None = None, helptext: str | None = None
    ) -> str:
        """``%config Mistral`` shows the base URL in effect without its credentials."""
        text = super().class_get_trait_help(trait, inst, helptext)
        if inst is not None and trait.name in ("base_url", "codestral_base_url"):
            from .api.urls import display_url

            url = getattr(inst, trait.name)
            if url:
                text = text.replace(f"Current: {url!r}", f"Current: {display_url(url)!r}")
        return text

    def explicit(self, name: str) -> Any:
        """The value of setting ``name`` if it was set (config, ``%config``), else None."""
        return getattr(self, name) if self.trait_has_value(name) else None

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for ``MistralClient``/``AsyncMistralClient``. The settings that
        follow the environment are passed only when set: otherwise the client reads the
        environment itself, at each request."""
        from .api.dialect import forced

        dialect = self.explicit("dialect")
        return {
            "base_url": self.explicit("base_url") or None,
            "model": self.explicit("model") or None,
            "dialect": forced(dialect, "forced by Mistral.dialect") or "auto" if dialect else None,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "retry_total_time": self.retry_budget,
            "max_reply_chars": self.max_reply_chars,
            "models_cache": self.models_cache(),
        }

    def models_cache(self) -> ModelListCache | None:
        """Where GET /models answers are kept between processes (None: not on disk)."""
        from .api.model_cache import ModelListCache

        if not self.models_cache_ttl > 0:
            return None
        return ModelListCache(os.path.join(self.cache_dir, "models"), self.models_cache_ttl)

    def codestral_options(self) -> dict[str, Any] | None:
        """Client options for Codestral's own server, used for inline completion by
        fill-in-the-middle, when its key (MISTRAL_CODESTRAL_API_KEY) or base URL
        (``codestral_base_url``) is given; None: the main server is used. A missing one
        falls back: the key to MISTRAL_API_KEY, the base URL to
        https://codestral.mistral.ai/v1 (with a Codestral key) or the main base URL."""
        key = (os.environ.get("MISTRAL_CODESTRAL_API_KEY") or "").strip()
        base_url = self.codestral_base_url
        if not key and not base_url:
            return None
        if not base_url:
            base_url = CODESTRAL_BASE_URL
        options = self.client_options()
        options.update(base_url=base_url, model=self.codestral_model, dialect="mistral")
        if key:
            options["api_key"] = key
        return options

    def effective(self) -> dict[str, Any]:
        """Every setting as it applies now: the key only as set/missing, the base URL without
        credentials."""
        from .api.urls import display_url

        values = {name: getattr(self, name) for name in sorted(self.class_own_traits())}
        values.pop("prices")
        values["base_url"] = display_url(values["base_url"])
        if values["codestral_base_url"]:
            values["codestral_base_url"] = display_url(values["codestral_base_url"])
        values["api_key"] = "set" if os.environ.get("MISTRAL_API_KEY") else "missing"
        values["codestral_api_key"] = (
            "set" if os.environ.get("MISTRAL_CODESTRAL_API_KEY") else "not set"
        )
        return values
