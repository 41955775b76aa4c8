"""Plain data types of the chat API: what goes in (messages) and what comes back."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass
class ToolCall:
    """One function call the model asked for. ``arguments`` is parsed; the wire text is kept."""

    id: str
    name: str
    arguments: dict[str, Any]
    raw_arguments: str = ""
    index: int = 0

    @property
    def arguments_valid(self) -> bool:
        """False when the wire arguments were not a JSON object (e.g. cut by max_tokens)."""
        return _parse_arguments(self.raw_arguments) is not None

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.raw_arguments or "{}"},
        }

    @classmethod
    def from_parts(cls, id: str | None, name: str, raw: Any, index: int = 0) -> ToolCall:
        if isinstance(raw, dict):
            raw_text = json.dumps(raw, ensure_ascii=False)
        else:
            raw_text = "" if raw is None else str(raw)
        return cls(
            id=id or "",
            name=name,
            arguments=_parse_arguments(raw_text) or {},
            raw_arguments=raw_text,
            index=index,
        )


def _parse_arguments(raw: str) -> dict[str, Any] | None:
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@dataclass
class Message:
    """A chat message in the shape the API takes."""

    role: Role
    content: str | None = ""
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    prefix: bool = False

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.role == "assistant":
            if self.tool_calls:
                out["tool_calls"] = [tc.to_wire() for tc in self.tool_calls]
            if self.prefix:
                out["prefix"] = True
        if self.role == "tool":
            out["tool_call_id"] = self.tool_call_id
            if self.name:
                out["name"] = self.name
        return out


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, data: Any) -> Usage | None:
        if not isinstance(data, dict):
            return None
        known = ("prompt_tokens", "completion_tokens", "total_tokens")
        values = {k: _as_int(data.get(k)) for k in known}
        if not values["total_tokens"]:
            values["total_tokens"] = values["prompt_tokens"] + values["completion_tokens"]
        return cls(**values, extra={k: v for k, v in data.items() if k not in known})


def _as_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass
class Choice:
    index: int = 0
    content: str = ""
    thinking: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None


@dataclass
class Completion:
    """A whole reply. The convenience fields read the first choice."""

    id: str = ""
    model: str = ""
    created: int = 0
    choices: list[Choice] = field(default_factory=lambda: [Choice()])
    usage: Usage | None = None

    @property
    def content(self) -> str:
        return self.choices[0].content if self.choices else ""

    @property
    def thinking(self) -> str:
        return self.choices[0].thinking if self.choices else ""

    @property
    def tool_calls(self) -> list[ToolCall]:
        return self.choices[0].tool_calls if self.choices else []

    @property
    def finish_reason(self) -> str | None:
        return self.choices[0].finish_reason if self.choices else None

    def to_message(self) -> Message:
        """The assistant message to append to the history for the next turn."""
        return Message(
            role="assistant",
            content=self.content,
            tool_calls=list(self.tool_calls) or None,
        )


@dataclass
class Delta:
    """One step of a stream: new text of choice ``index`` (possibly empty)."""

    text: str = ""
    thinking: str = ""
    index: int = 0
    finish_reason: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)


@dataclass
class ModelInfo:
    """One card of ``GET /models``: La Plateforme's (capabilities, aliases, deprecation) or
    vLLM's (``max_model_len`` only). Values of the wrong type are dropped, not trusted."""

    id: str
    owned_by: str = ""
    name: str = ""  # La Plateforme: the model behind the id ("codestral-2508" for an alias)
    max_context_length: int | None = None
    aliases: list[str] = field(default_factory=list)
    deprecation: str | None = None
    replacement: str | None = None
    capabilities: dict[str, Any] | None = None  # None: the card has no capabilities at all
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, card: Any) -> ModelInfo:
        card = card if isinstance(card, dict) else {}
        context = card.get("max_context_length", card.get("max_model_len"))
        aliases = card.get("aliases")
        caps = card.get("capabilities")
        deprecation = card.get("deprecation")
        replacement = card.get("deprecation_replacement_model")
        return cls(
            id=str(card.get("id", "")),
            owned_by=str(card.get("owned_by") or ""),
            name=card["name"] if isinstance(card.get("name"), str) else "",
            max_context_length=context if _is_int(context) and context > 0 else None,
            aliases=[a for a in aliases if isinstance(a, str)] if isinstance(aliases, list) else [],
            deprecation=deprecation if isinstance(deprecation, str) and deprecation else None,
            replacement=replacement if isinstance(replacement, str) and replacement else None,
            capabilities=caps if isinstance(caps, dict) else None,
            raw=card,
        )

    def capability(self, name: str) -> bool | None:
        """The card's word on capability ``name``: True/False, or None when the card says
        nothing (vLLM's cards, 2024's permission-style cards). A capabilities object without
        the key predates it (a 2024 card has no ``vision``): False."""
        if self.capabilities is None:
            return None
        return self.capabilities.get(name) is True


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
