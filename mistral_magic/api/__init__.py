"""The only code that speaks HTTP to a model server (La Plateforme or a vLLM server).

It imports nothing else of mistral_magic. Its public surface is ``__all__`` below:

* clients: :class:`MistralClient` / :class:`AsyncMistralClient` (``complete``, ``stream``,
  ``complete_fim`` / ``stream_fim`` for Codestral's fill-in-the-middle, ``list_models``,
  ``model_catalog``, ``resolve_dialect``, ``request_json`` / ``request_bytes`` for other
  endpoints, ``check_credentials``), their streams :class:`ChatStream` /
  :class:`AsyncChatStream`; ``files``/``batch`` submodules for the Files and Batch APIs;
* data: :class:`Message`, :class:`Completion`, :class:`Choice`, :class:`Delta`,
  :class:`ToolCall`, :class:`Usage`, :class:`ModelInfo`; what models can do:
  :class:`ModelCatalog` (the cards of ``GET /models``), :class:`Capabilities`;
* errors: :class:`MistralError` and every subclass (all defined in ``errors``);
* retries: :class:`RetryPolicy` (shared with ``bulk/``), :class:`Notice` (what the client
  waits for, for a face to show); the dialect: :class:`DialectChoice`;
* helpers: :func:`build_chat_body` / :func:`build_fim_body` (the exact wire bodies),
  :func:`parse_completion`, :func:`check_base_url` / :func:`display_url` (validation;
  credentials hidden), :class:`Scrubber` (the one way server text is quoted), and the
  defaults.

Names are loaded on first use, so ``import mistral_magic.api`` (or the magics at
``%load_ext``) does not pay for importing httpx.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_HOMES = {
    "DEFAULT_BASE_URL": "defaults",
    "DEFAULT_MAX_REPLY_CHARS": "defaults",
    "DEFAULT_MAX_RETRIES": "defaults",
    "DEFAULT_MODEL": "defaults",
    "DEFAULT_RETRY_BUDGET": "defaults",
    "DEFAULT_TIMEOUT": "defaults",
    "AsyncChatStream": "async_client",
    "AsyncMistralClient": "async_client",
    "ChatStream": "client",
    "MistralClient": "client",
    "DialectChoice": "dialect",
    "APIConnectionError": "errors",
    "APITimeoutError": "errors",
    "AuthenticationError": "errors",
    "BatchJobNotFoundError": "errors",
    "BatchUnavailableError": "errors",
    "ContextLengthError": "errors",
    "InvalidRequestError": "errors",
    "MissingAPIKeyError": "errors",
    "MistralError": "errors",
    "ModelNotFoundError": "errors",
    "RateLimitError": "errors",
    "ReplyTooLongError": "errors",
    "ResponseFormatError": "errors",
    "ServerError": "errors",
    "ServerReportedError": "errors",
    "SettingsError": "errors",
    "StreamError": "errors",
    "Capabilities": "models",
    "ModelCatalog": "models",
    "build_chat_body": "request",
    "build_fim_body": "request",
    "Notice": "retry",
    "RetryPolicy": "retry",
    "Scrubber": "scrub",
    "Choice": "types",
    "Completion": "types",
    "Delta": "types",
    "Message": "types",
    "ModelInfo": "types",
    "ToolCall": "types",
    "Usage": "types",
    "check_base_url": "checks",
    "display_url": "urls",
    "parse_completion": "wire",
}

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_REPLY_CHARS",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_MODEL",
    "DEFAULT_RETRY_BUDGET",
    "DEFAULT_TIMEOUT",
    "APIConnectionError",
    "APITimeoutError",
    "AsyncChatStream",
    "AsyncMistralClient",
    "AuthenticationError",
    "BatchJobNotFoundError",
    "BatchUnavailableError",
    "Capabilities",
    "ChatStream",
    "Choice",
    "Completion",
    "ContextLengthError",
    "Delta",
    "DialectChoice",
    "InvalidRequestError",
    "Message",
    "MissingAPIKeyError",
    "MistralClient",
    "MistralError",
    "ModelCatalog",
    "ModelInfo",
    "ModelNotFoundError",
    "Notice",
    "RateLimitError",
    "ReplyTooLongError",
    "ResponseFormatError",
    "RetryPolicy",
    "Scrubber",
    "ServerError",
    "ServerReportedError",
    "SettingsError",
    "StreamError",
    "ToolCall",
    "Usage",
    "build_chat_body",
    "build_fim_body",
    "check_base_url",
    "display_url",
    "parse_completion",
]

if TYPE_CHECKING:
    from .async_client import AsyncChatStream, AsyncMistralClient
    from .checks import check_base_url
    from .client import ChatStream, MistralClient
    from .defaults import (
        DEFAULT_BASE_URL,
        DEFAULT_MAX_REPLY_CHARS,
        DEFAULT_MAX_RETRIES,
        DEFAULT_MODEL,
        DEFAULT_RETRY_BUDGET,
        DEFAULT_TIMEOUT,
    )
    from .dialect import DialectChoice
    from .errors import (
        APIConnectionError,
        APITimeoutError,
        AuthenticationError,
        BatchJobNotFoundError,
        BatchUnavailableError,
        ContextLengthError,
        InvalidRequestError,
        MissingAPIKeyError,
        MistralError,
        ModelNotFoundError,
        RateLimitError,
        ReplyTooLongError,
        ResponseFormatError,
        ServerError,
        ServerReportedError,
        SettingsError,
        StreamError,
    )
    from .models import Capabilities, ModelCatalog
    from .request import build_chat_body, build_fim_body
    from .retry import Notice, RetryPolicy
    from .scrub import Scrubber
    from .types import Choice, Completion, Delta, Message, ModelInfo, ToolCall, Usage
    from .urls import display_url
    from .wire import parse_completion


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
