"""The only code that speaks HTTP to a model server (La Plateforme or a vLLM server)."""

from .client import (
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    AsyncChatStream,
    AsyncMistralClient,
    ChatStream,
    MistralClient,
)
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
