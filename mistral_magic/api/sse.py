"""Server-sent events: framing (bytes -> data payloads) and chat-chunk accumulation.

Both pieces are pure: they see only what they are fed, do no I/O and raise nothing but
:class:`MistralError` subclasses on malformed input. Both are linear in what they are fed,
and the framing bounds the length of a line (and of an event), so a server that never sends a
newline costs memory up to that bound and then an error, not quadratic time.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import MistralError, ResponseFormatError, error_in_body
from .scrub import Scrubber
from .types import Choice, Completion, Delta, ToolCall, Usage
from .wire import reasoning_field, split_content, tool_call_from_wire

_loads = json.JSONDecoder().decode
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
DONE = "[DONE]"
# The longest line (or multi-line event) accepted: far above any real chunk, whose content is
# a few tokens (La Plateforme sends a whole tool call in one event, still kilobytes).
DEFAULT_MAX_LINE = 8 * 1024 * 1024
_KNOWN_FIELDS = (":", "event", "id", "retry")


class SSEDecoder:
    """Incremental SSE framing per the WHATWG rules: CR, LF or CRLF line ends, a BOM,
    comment lines, multi-line ``data``; ``event``/``id``/``retry`` fields are ignored.

    ``max_line`` bounds a line and an event's data, in characters.
    """

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        self.max_line = max_line
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        # The unfinished last line, as pieces: joining once when it ends keeps a long line
        # linear (re-joining it on every chunk was quadratic).
        self._pending: list[str] = []
        self._pending_size = 0
        self._data: list[str] = []
        self._data_size = 0
        self._at_start = True
        self._drop_leading_lf = False
        self.dispatched = 0  # events handed out so far
        self.stray_line = ""  # the first line that is no SSE field (an HTML page, say)

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
        if "\n" not in text and "\r" not in text:  # the middle of a long line: just keep it
            self._keep(text)
            return []
        if text.endswith("\r"):
            # The CR may be the first half of a CRLF split across two chunks.
            self._drop_leading_lf = True
        lines = _LINE_BREAK.split(text)
        tail = lines.pop()
        events: list[str] = []
        if lines:
            if self._pending:
                self._pending.append(lines[0])
                lines[0] = "".join(self._pending)
                self._pending.clear()
                self._pending_size = 0
            data = self._data
            limit = self.max_line
            # one loop, no call per line: this is the hot path of every stream
            for line in lines:
                if not line:
                    if data:
                        self._dispatch(events)
                elif line.startswith("data:"):
                    value = line[6:] if line.startswith("data: ") else line[5:]
                    data.append(value)
                    self._data_size += len(value)
                    if self._data_size > limit:
                        raise self._too_long("event" if len(data) > 1 else "line")
                elif line == "data":
                    data.append("")
                elif len(line) > limit:
                    raise self._too_long("line")
                elif not self.stray_line and not line.startswith(_KNOWN_FIELDS):
                    self.stray_line = line[:200]
                # comments (":...") and other fields are ignored
        if tail:
            self._keep(tail)
        return events

    def _keep(self, piece: str) -> None:
        self._pending.append(piece)
        self._pending_size += len(piece)
        if self._pending_size > self.max_line:
            raise self._too_long("line")

    def _too_long(self, what: str) -> ResponseFormatError:
        return ResponseFormatError(
            f"The server sent a stream {what} longer than {self.max_line:,} characters, which "
            "no chat reply needs; the stream was closed."
        )

    def finish(self) -> list[str]:
        """End of stream: dispatch what is left, even without its closing blank line."""
        events = self.feed(self._utf8.decode(b"", final=True))
        if self._pending:
            events += self.feed("\n")
        if self._data:
            self._dispatch(events)
        return events

    def _dispatch(self, events: list[str]) -> None:
        payload = "\n".join(self._data)
        self._data.clear()
        self._data_size = 0
        if payload:  # an empty data buffer dispatches nothing (WHATWG), e.g. a bare "data:"
            events.append(payload)
            self.dispatched += 1


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


ErrorExplainer = Callable[[Mapping[str, Any]], MistralError]


class StreamAccumulator:
    """Folds ``chat.completion.chunk`` payloads into deltas and, at the end, a Completion.

    ``progress`` counts the events that carried content (text, thinking, a tool-call
    fragment, usage): role-only chunks, empty deltas and comments are not progress. ``size``
    is the characters of content received so far. ``scrubber`` cleans any server text quoted
    in an error; ``explain_error`` turns an error event into the error to raise.
    """

    def __init__(
        self,
        scrubber: Scrubber | None = None,
        explain_error: ErrorExplainer | None = None,
    ) -> None:
        self.id = ""
        self.model = ""
        self.created = 0
        self.usage: Usage | None = None
        self.done = False
        self.progress = 0
        self.size = 0
        self._scrubber = scrubber or Scrubber()
        self._explain_error = explain_error
        self._choices: dict[int, _ChoiceState] = {}

    def add(self, payload: str) -> list[Delta]:
        if payload == DONE or payload.strip() == DONE:
            self.done = True
            return []
        try:
            chunk = _loads(payload)
        except (ValueError, RecursionError) as exc:
            raise ResponseFormatError(
                "The server sent a stream event that is not JSON "
                f"({self._scrubber.quote(payload, 80)!r}). Is MISTRAL_BASE_URL the API root, "
                "ending in /v1?"
            ) from exc
        return self.add_chunk(chunk)

    def add_chunk(self, chunk: Any) -> list[Delta]:
        if not isinstance(chunk, dict):
            raise ResponseFormatError("The server sent a stream event that is not a JSON object.")
        if chunk.get("object") == "error" or "error" in chunk:
            if self._explain_error is not None:
                raise self._explain_error(chunk)
            raise error_in_body(
                chunk, model=None, base_url=None, scrubber=self._scrubber, dialect=None
            )
        if not self.id:
            self.id = _text(chunk.get("id"))
            self.model = _text(chunk.get("model"))
            created = chunk.get("created")
            self.created = created if type(created) is int else 0
        raw_usage = chunk.get("usage")
        if raw_usage is not None:
            usage = Usage.from_wire(raw_usage)
            if usage is not None:
                self.usage = usage
                self.progress += 1
        choices = chunk.get("choices")
        if choices is None:
            return []
        if not isinstance(choices, list):
            raise ResponseFormatError(
                "The server sent a stream chunk whose `choices` is not a list."
            )
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
        if len(delta) > 1 or "content" not in delta:  # vLLM's reasoning is a field of its own
            thinking += reasoning_field(delta)
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
        if text or thinking or touched:
            self.progress += 1
            self.size += len(text) + len(thinking)
            if touched and type(raw_calls) is list:
                self.size += sum(len(str(rc)) for rc in raw_calls)
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


def decode_stream(chunks: Iterable[bytes | str]) -> Completion:
    """Decode a whole recorded stream into its Completion (used by tests and replays)."""
    acc = StreamAccumulator()
    for payload in iter_payloads(chunks):
        acc.add(payload)
        if acc.done:
            break
    return acc.completion()
