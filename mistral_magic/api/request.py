"""Building request bodies for either dialect: La Plateforme's strict schema, or the
OpenAI-compatible one that vLLM speaks when it serves Mistral-Large-Instruct-2407."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from .dialect import Dialect
from .types import Message

__all__ = [
    "CHAT_PARAMS",
    "FIM_PARAMS",
    "Dialect",
    "body_sha256",
    "build_chat_body",
    "build_fim_body",
    "encode_body",
    "message_to_wire",
]

# Request fields of La Plateforme's chat API that apply to Mistral Large 2 (protocol notes §1),
# and ``reasoning_effort`` (2026 specs; the engine sends it only to models whose card says
# they reason: servers that do not know it refuse it).
CHAT_PARAMS = frozenset(
    {
        "reasoning_effort",
        "temperature",
        "top_p",
        "max_tokens",
        "stop",
        "random_seed",
        "response_format",
        "tools",
        "tool_choice",
        "presence_penalty",
        "frequency_penalty",
        "n",
        "safe_prompt",
        "parallel_tool_calls",
    }
)
# Request fields of ``POST /v1/fim/completions`` besides model, prompt, suffix and stream
# (protocol notes §5). No ``name`` and no OpenAI-only field: La Plateforme refuses them (422).
FIM_PARAMS = frozenset({"temperature", "top_p", "max_tokens", "min_tokens", "stop", "random_seed"})
_ALIASES = {"seed": "random_seed"}
_TOOL_CHOICE_KEYWORDS = frozenset({"auto", "none", "any", "required"})


def message_to_wire(message: Message | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(message, Message):
        return message.to_wire()
    if not isinstance(message, Mapping) or "role" not in message:
        raise TypeError(f"A message must be a Message or a dict with a 'role', not {message!r}")
    return {k: v for k, v in message.items() if v is not None or k == "content"}


def _tool_to_wire(tool: Any) -> dict[str, Any]:
    if hasattr(tool, "to_wire"):
        return tool.to_wire()
    if isinstance(tool, Mapping) and "function" in tool:
        return {"type": "function", **dict(tool)}
    if isinstance(tool, Mapping) and "name" in tool:
        return {"type": "function", "function": dict(tool)}
    raise TypeError(f"A tool must be a dict in the API's shape, not {tool!r}")


def _tool_choice(value: Any, dialect: Dialect) -> Any:
    if isinstance(value, str):
        if value in _TOOL_CHOICE_KEYWORDS:
            if dialect == "openai" and value == "any":
                return "required"
            return value
        return {"type": "function", "function": {"name": value}}
    return value


def build_chat_body(
    messages: Sequence[Message | Mapping[str, Any]],
    params: Mapping[str, Any],
    *,
    model: str,
    dialect: Dialect,
    stream: bool,
) -> dict[str, Any]:
    """The JSON body of ``POST /chat/completions``. Unset (None) parameters are omitted,
    unknown ones refused here rather than by the server's 422."""
    unknown = [k for k in params if k not in CHAT_PARAMS and k not in _ALIASES]
    if unknown:
        raise TypeError(
            f"Unknown chat parameter(s) {', '.join(sorted(unknown))}; known: "
            f"{', '.join(sorted(CHAT_PARAMS))}."
        )
    wire_messages = [message_to_wire(m) for m in messages]
    if not wire_messages:
        raise ValueError("A chat request needs at least one message.")
    body: dict[str, Any] = {"model": model, "messages": wire_messages}
    for key, value in params.items():
        if value is None:
            continue
        key = _ALIASES.get(key, key)
        if key == "tools":
            value = [_tool_to_wire(t) for t in value] or None
            if value is None:
                continue
        elif key == "tool_choice":
            value = _tool_choice(value, dialect)
        body[key] = value
    if stream:
        body["stream"] = True
    return _to_openai(body, stream) if dialect == "openai" else body


def encode_body(body: Mapping[str, Any]) -> bytes:
    """The bytes POSTed for a JSON ``body`` (UTF-8, as built: key order kept)."""
    return json.dumps(body, ensure_ascii=False).encode()


def body_sha256(content: bytes) -> str:
    """The SHA-256 (hex) of a request body's bytes: a reply's provenance names its request
    by this, never by the request itself."""
    return hashlib.sha256(content).hexdigest()


def _to_openai(body: dict[str, Any], stream: bool) -> dict[str, Any]:
    if "random_seed" in body:
        body["seed"] = body.pop("random_seed")
    body.pop("safe_prompt", None)  # no such thing outside La Plateforme
    if stream:
        body["stream_options"] = {"include_usage": True}
    messages = body["messages"]
    last = messages[-1]
    if last.get("role") == "assistant" and last.get("prefix"):
        messages[-1] = {k: v for k, v in last.items() if k != "prefix"}
        body["continue_final_message"] = True
        body["add_generation_prompt"] = False
    return body


def build_fim_body(
    prompt: str, suffix: str, params: Mapping[str, Any], *, model: str, stream: bool
) -> dict[str, Any]:
    """The JSON body of ``POST /fim/completions`` (Codestral's fill-in-the-middle): the code
    before the cursor, the code after it. Only La Plateforme serves it (vLLM has no such
    route), so there is one dialect. Unset (None) parameters are omitted, unknown ones
    refused here rather than by the server's 422."""
    unknown = [k for k in params if k not in FIM_PARAMS and k not in _ALIASES]
    if unknown:
        raise TypeError(
            f"Unknown fill-in-the-middle parameter(s) {', '.join(sorted(unknown))}; known: "
            f"{', '.join(sorted(FIM_PARAMS))}."
        )
    body: dict[str, Any] = {"model": model, "prompt": prompt}
    if suffix:
        body["suffix"] = suffix
    for key, value in params.items():
        if value is not None:
            body[_ALIASES.get(key, key)] = value
    if stream:
        body["stream"] = True
    return body
