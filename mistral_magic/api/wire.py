"""Reading response bodies: content in any of its shapes, tool calls, whole completions."""

from __future__ import annotations

from typing import Any

from .errors import ResponseFormatError
from .types import Choice, Completion, ToolCall, Usage

__all__ = [
    "ResponseFormatError",
    "parse_completion",
    "reasoning_field",
    "split_content",
    "tool_call_from_wire",
]

# vLLM (``--reasoning-parser``) puts a reasoning model's thinking in a field of the message or
# delta of its own: ``reasoning_content`` until 0.10, ``reasoning`` since.
_REASONING_FIELDS = ("reasoning_content", "reasoning")


def split_content(content: Any) -> tuple[str, str]:
    """``(text, thinking)`` of a message or delta ``content``: a string, null or chunk list."""
    if content is None:
        return "", ""
    if isinstance(content, str):
        return content, ""
    if not isinstance(content, list):
        return "", ""
    text: list[str] = []
    thinking: list[str] = []
    for chunk in content:
        if isinstance(chunk, str):
            text.append(chunk)
        elif isinstance(chunk, dict):
            kind = chunk.get("type")
            if kind == "text" and isinstance(chunk.get("text"), str):
                text.append(chunk["text"])
            elif kind == "thinking":
                inner_text, inner_thinking = split_content(chunk.get("thinking"))
                thinking.append(inner_text + inner_thinking)
    return "".join(text), "".join(thinking)


def reasoning_field(message: dict[str, Any]) -> str:
    """The thinking an OpenAI-style server (vLLM) sent beside ``content``, or ""."""
    for name in _REASONING_FIELDS:
        value = message.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def tool_call_from_wire(raw: Any, default_index: int) -> ToolCall | None:
    if not isinstance(raw, dict):
        return None
    function = raw.get("function")
    if not isinstance(function, dict):
        function = {}
    index = raw.get("index")
    call_id = raw.get("id")
    name = function.get("name")
    return ToolCall.from_parts(
        id=call_id if isinstance(call_id, str) else None,
        name=name if isinstance(name, str) else "",
        raw=function.get("arguments"),
        index=index if isinstance(index, int) and not isinstance(index, bool) else default_index,
    )


def parse_completion(body: Any) -> Completion:
    """A non-streamed chat completion body (La Plateforme or OpenAI-compatible)."""
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
        raise ResponseFormatError(
            "The server answered, but not with a chat completion (no `choices`). Is "
            "MISTRAL_BASE_URL the API root, ending in /v1?"
        )
    choices = []
    for position, raw_choice in enumerate(body["choices"]):
        if not isinstance(raw_choice, dict):
            continue
        message = raw_choice.get("message")
        message = message if isinstance(message, dict) else {}
        text, thinking = split_content(message.get("content"))
        thinking += reasoning_field(message)
        raw_calls = message.get("tool_calls")
        calls = [
            call
            for i, raw in enumerate(raw_calls if isinstance(raw_calls, list) else [])
            if (call := tool_call_from_wire(raw, i)) is not None
        ]
        index = raw_choice.get("index")
        finish = raw_choice.get("finish_reason")
        choices.append(
            Choice(
                index=index if isinstance(index, int) else position,
                content=text,
                thinking=thinking,
                tool_calls=calls,
                finish_reason=finish if isinstance(finish, str) else None,
            )
        )
    choices.sort(key=lambda c: c.index)
    return Completion(
        id=str(body.get("id") or ""),
        model=str(body.get("model") or ""),
        created=body["created"] if isinstance(body.get("created"), int) else 0,
        choices=choices or [Choice()],
        usage=Usage.from_wire(body.get("usage")),
    )
