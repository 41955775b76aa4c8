"""The context engine: what the model gets to see of the user's live notebook.

Light to import: nothing here imports pandas, numpy, polars, mistral_common or sentencepiece
at import time (the tokenizer loads lazily; see :func:`budget.warm_up`), and the names below
load their module on first use, so ``%load_ext`` pays only for what the magics touch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_HOMES = {
    "CONTEXT_WINDOW": "budget",
    "Packed": "budget",
    "count_request_tokens": "budget",
    "count_tokens": "budget",
    "format_token_count": "tokenizers",
    "is_exact": "tokenizers",
    "record_prompt_tokens": "tokenizers",
    "code_language": "items",
    "fit": "fit",
    "omitted_note": "budget",
    "pack": "budget",
    "render_context": "budget",
    "warm_up": "budget",
    "describe": "describe",
    "short_label": "describe",
    "ContextItem": "items",
    "ErrorInfo": "errors",
    "collect": "kernel",
    "last_error": "errors",
    "Redactor": "redact",
    "is_secret_name": "redact",
}

__all__ = [
    "CONTEXT_WINDOW",
    "ContextItem",
    "ErrorInfo",
    "Packed",
    "Redactor",
    "code_language",
    "collect",
    "count_request_tokens",
    "count_tokens",
    "describe",
    "fit",
    "format_token_count",
    "is_exact",
    "is_secret_name",
    "last_error",
    "omitted_note",
    "pack",
    "record_prompt_tokens",
    "render_context",
    "short_label",
    "warm_up",
]

if TYPE_CHECKING:
    from .budget import (
        CONTEXT_WINDOW,
        Packed,
        count_request_tokens,
        count_tokens,
        omitted_note,
        pack,
        render_context,
        warm_up,
    )
    from .describe import describe, short_label
    from .errors import ErrorInfo, last_error
    from .fit import fit
    from .items import ContextItem, code_language
    from .kernel import collect
    from .redact import Redactor, is_secret_name
    from .tokenizers import format_token_count, is_exact, record_prompt_tokens


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value
