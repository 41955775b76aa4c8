"""Server-sent events: framing (bytes -> data payloads) and chat-chunk accumulation.

Both pieces are pure: they see only what they are fed, do no I/O and raise nothing but
:class:`StreamError` (a :class:`MistralError`) on malformed input.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import StreamError
from .types import Choice, Completion, Delta, ToolCall, Usage
from .wire import split_content, tool_call_from_wire

_loads = json.JSONDecoder().decode
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
DONE = "[DONE]"


class SSEDecoder:
    """Incremental SSE framing per the WHATWG rules: CR, LF or CRLF line ends, a BOM,
    comment lines, multi-line ``data``; ``event``/``id``/``retry`` fields are ignored.
    """

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending_line = ""
        self._data: list[str] = []
        self._at_start = True
        self._drop_leading_lf = False

    def feed_bytes(self, chunk: bytes) -> list[str]:
        return self.feed(self._utf8.decode(chunk))

    def feed(self, text: str) -> list[str]:
        if not text:
            return []
        if self._at_start:
            self._at_start = False
            if text.startswith("\ufeff"):
                text = text[1:]
        if self._drop_leading_lf:
            self._drop_leading_lf = False
            if text.startswith("\n"):
                text = text[1:]
        lines = _LINE_BREAK.split(self._pending_line + text)
        self._pending_line = lines.pop()
        if text.endswith("\r"):
            # The CR may be the first half of a CRLF split across two chunks.
            self._drop_leading_lf = True
        events: list[str] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append("\n".join(data))
                    data.clear()
            elif line.startswith("data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(" ") else value)
            elif line == "data":
                data.append("")
            # comments (":...") and other fields are ignored
        return events

    def finish(self) -> list[str]:
        """End of stream: dispatch what is left, even without its closing blank line."""
        events = self.feed(self._utf8.decode(b"", final=True))
        if self._pending_line:
            events += self.feed("\n")
        if self._data:
            events.append("\n".join(self._data))
            self._data.clear()
        return events


def iter_payloads(chunks: Iterable[bytes | str]) -> Iterator[str]:
    """All data payloads of a byte or text stream, in order."""
    decoder = SSEDecoder()
    for chunk in chunks:
        yield from decoder.feed_bytes(chunk) if isinstance(chunk, bytes) else decoder.feed(chunk)
    yield from decoder.finish()


@dataclass
class _ChoiceState:
    index: int
    text: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    calls: dict[int, ToolCall] = field(default_factory=dict)
    finish_reason: str | None = None

    def merge_call(self, raw: Any) -> ToolCall | None:
        has_index = isinstance(raw, dict) and isinstance(raw.get("index"), int)
        call = tool_call_from_wire(raw, len(self.calls))
        if call is None:
            return None
        if not has_index:
            # La Plateforme sends whole calls, possibly without an index: each is a new call.
            call.index = len(self.calls)
            self.calls[call.index] = call
            return call
        known = self.calls.get(call.index)
        if known is None:
            self.calls[call.index] = call
            return call
        # OpenAI-style fragments keyed by index: id and name once, arguments in pieces.
        known.id = known.id or call.id
        known.name = known.name or call.name
        merged = ToolCall.from_parts(known.id, known.name, known.raw_arguments + call.raw_arguments)
        known.arguments, known.raw_arguments = merged.arguments, merged.raw_arguments
        return known

    def to_choice(self) -> Choice:
        return Choice(
            index=self.index,
            content="".join(self.text),
            thinking="".join(self.thinking),
            tool_calls=[self.calls[i] for i in sorted(self.calls)],
            finish_reason=self.finish_reason,
        )


class StreamAccumulator:
    """Folds ``chat.completion.chunk`` payloads into deltas and, at the end, a Completion."""

    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self.created = 0
        self.usage: Usage | None = None
        self.done = False
        self._choices: dict[int, _ChoiceState] = {}

    def add(self, payload: str) -> list[Delta]:
        if payload == DONE or payload.strip() == DONE:
            self.done = True
            return []
        try:
            chunk = _loads(payload)
        except (ValueError, RecursionError) as exc:
            raise StreamError(
                f"The server sent a stream event that is not JSON ({payload[:80]!r})."
            ) from exc
        return self.add_chunk(chunk)

    def add_chunk(self, chunk: Any) -> list[Delta]:
        if not isinstance(chunk, dict):
            raise StreamError("The server sent a stream event that is not a JSON object.")
        if chunk.get("object") == "error" or "error" in chunk:
            raise _stream_error(chunk)
        if not self.id:
            self.id = _text(chunk.get("id"))
            self.model = _text(chunk.get("model"))
            created = chunk.get("created")
            self.created = created if type(created) is int else 0
        raw_usage = chunk.get("usage")
        if raw_usage is not None:
            self.usage = Usage.from_wire(raw_usage) or self.usage
        choices = chunk.get("choices")
        if choices is None:
            return []
        if not isinstance(choices, list):
            raise StreamError("The server sent a stream chunk whose `choices` is not a list.")
        return [d for raw in choices if (d := self._add_choice(raw)) is not None]

    def _add_choice(self, raw: Any) -> Delta | None:
        if not isinstance(raw, dict):
            return None
        index = raw.get("index", 0)
        if type(index) is not int:
            index = 0
        state = self._choices.get(index)
        if state is None:
            state = self._choices[index] = _ChoiceState(index)
        delta = raw.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        content = delta.get("content")
        if type(content) is str:  # the common case, kept cheap
            text, thinking = content, ""
        else:
            text, thinking = split_content(content)
        if text:
            state.text.append(text)
        if thinking:
            state.thinking.append(thinking)
        raw_calls = delta.get("tool_calls")
        touched = (
            [call for rc in raw_calls if (call := state.merge_call(rc)) is not None]
            if type(raw_calls) is list
            else []
        )
        finish = raw.get("finish_reason")
        if isinstance(finish, str):
            state.finish_reason = finish
        return Delta(
            text=text,
            thinking=thinking,
            index=index,
            finish_reason=finish if isinstance(finish, str) else None,
            tool_calls=touched,
        )

    @property
    def finished(self) -> bool:
        """True once the server said it is done (``[DONE]``, or every choice finished)."""
        if self.done:
            return True
        return bool(self._choices) and all(c.finish_reason for c in self._choices.values())

    def completion(self) -> Completion:
        states = [self._choices[i] for i in sorted(self._choices)]
        return Completion(
            id=self.id,
            model=self.model,
            created=self.created,
            choices=[s.to_choice() for s in states] or [Choice()],
            usage=self.usage,
        )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _stream_error(chunk: Mapping[str, Any]) -> StreamError:
    inner = chunk.get("error", chunk)
    message = inner.get("message") if isinstance(inner, dict) else inner
    if not isinstance(message, str):
        message = json.dumps(message)[:300] if message is not None else "unknown error"
    return StreamError(f"The server reported an error in the middle of the stream: {message}")


def decode_stream(chunks: Iterable[bytes | str]) -> Completion:
    """Decode a whole recorded stream into its Completion (used by tests and replays)."""
    acc = StreamAccumulator()
    for payload in iter_payloads(chunks):
        acc.add(payload)
        if acc.done:
            break
    return acc.completion()
