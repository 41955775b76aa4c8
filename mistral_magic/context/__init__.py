"""The context engine: what the model gets to see of the user's live notebook.

Light to import: nothing here imports pandas, numpy, polars, mistral_common or sentencepiece
at import time (the tokenizer loads lazily; see :func:`budget.warm_up`).
"""

from mistral_magic.context.budget import (
    CONTEXT_WINDOW,
    Packed,
    count_request_tokens,
    count_tokens,
    is_exact,
    omitted_note,
    pack,
    render_context,
    warm_up,
)
from mistral_magic.context.describe import describe, short_label
from mistral_magic.context.items import ContextItem
from mistral_magic.context.kernel import ErrorInfo, collect, last_error
from mistral_magic.context.redact import Redactor, is_secret_name

__all__ = [
    "CONTEXT_WINDOW",
    "ContextItem",
    "ErrorInfo",
    "Packed",
    "Redactor",
    "collect",
    "count_request_tokens",
    "count_tokens",
    "describe",
    "is_exact",
    "is_secret_name",
    "last_error",
    "omitted_note",
    "pack",
    "render_context",
    "short_label",
    "warm_up",
]
