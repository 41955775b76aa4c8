"""The only code that speaks HTTP to a model server (La Plateforme or a vLLM server).

Names are loaded on first use, so ``import mistral_magic.api.errors`` (or the magics at
``%load_ext``) does not pay for importing httpx.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_HOMES = {
    "DEFAULT_BASE_URL": "defaults",
    "DEFAULT_MODEL": "defaults",
    "AsyncChatStream": "client",
    "AsyncMistralClient": "client",
    "ChatStream": "client",
    "MistralClient": "client",
    "APIConnectionError": "errors",
    "APITimeoutError": "errors",
    "AuthenticationError": "errors",
    "ContextLengthError": "errors",
    "InvalidRequestError": "errors",
    "MissingAPIKeyError": "errors",
    "MistralError": "errors",
    "ModelNotFoundError": "errors",
    "RateLimitError": "errors",
    "ServerError": "errors",
    "StreamError": "errors",
    "Choice": "types",
    "Completion": "types",
    "Delta": "types",
    "Message": "types",
    "ModelInfo": "types",
    "ToolCall": "types",
    "Usage": "types",
}

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "APIConnectionError",
    "APITimeoutError",
    "AsyncChatStream",
    "AsyncMistralClient",
    "AuthenticationError",
    "ChatStream",
    "Choice",
    "Completion",
    "ContextLengthError",
    "Delta",
    "InvalidRequestError",
    "Message",
    "MissingAPIKeyError",
    "MistralClient",
    "MistralError",
    "ModelInfo",
    "ModelNotFoundError",
    "RateLimitError",
    "ServerError",
    "StreamError",
    "ToolCall",
    "Usage",
]

if TYPE_CHECKING:
    from .client import AsyncChatStream, AsyncMistralClient, ChatStream, MistralClient
    from .defaults import DEFAULT_BASE_URL, DEFAULT_MODEL
    from .errors import (
        APIConnectionError,
        APITimeoutError,
        AuthenticationError,
        ContextLengthError,
        InvalidRequestError,
        MissingAPIKeyError,
        MistralError,
        ModelNotFoundError,
        RateLimitError,
        ServerError,
        StreamError,
    )
    from .types import Choice, Completion, Delta, Message, ModelInfo, ToolCall, Usage


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
