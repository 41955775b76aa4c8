"""Scripted responses a test queues on the stub (``stub.queue(...)``).

``Fault`` and ``CaptureReplay`` of an error capture are served before the request is
validated (a 429 can hit any request); ``Reply``, ``Drop`` and ``CaptureReplay`` of a 200
capture are served only to a request that passed validation, like a real server would.
"""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.stub.captures import resolve_capture

_ALNUM = string.ascii_letters + string.digits


def new_tool_call_id() -> str:
    """A tool-call id as La Plateforme and vLLM make them: 9 characters [a-zA-Z0-9]."""
    return "".join(secrets.choice(_ALNUM) for _ in range(9))


@dataclass
class ToolCallSpec:
    """One tool call the stub should make. ``arguments`` may be a dict or a JSON string."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def __post_init__(self) -> None:
        if self.id is None:
            self.id = new_tool_call_id()

    @property
    def arguments_json(self) -> str:
        """The arguments as the API sends them: a JSON string (``json.dumps`` spacing)."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, ensure_ascii=False)


@dataclass
class Reply:
    """A successful completion.

    ``text=None`` means the stub's default reply (JSON-mode aware). ``chunks`` gives the
    exact stream pieces (their concatenation is the text). ``finish_reason=None`` means
    automatic: ``tool_calls`` when there are tool calls, ``length`` when ``max_tokens`` cut
    the reply, else ``stop``. ``usage=None`` means counted honestly.
    """

    text: str | None = None
    tool_calls: list[ToolCallSpec] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    chunks: list[str] | None = None
    thinking: str | None = None
    # Streamed: after the first text chunk, wait this long before the next one (a model that
    # stalls mid-answer); the wait ends early when the client leaves (``client_left``).
    pause_after_first: float = 0.0

    def __post_init__(self) -> None:
        if self.chunks is not None:
            joined = "".join(self.chunks)
            if self.text is not None and self.text != joined:
                raise ValueError(
                    "Reply(text=..., chunks=...) disagree: text must equal ''.join(chunks)"
                )
            self.text = joined


# Bodies as recorded (see tests/captures) or, where nothing was recorded, the
# stock messages of the Kong gateway that fronts api.mistral.ai.
_KONG_MESSAGES: dict[int, str] = {
    401: "Unauthorized",
    403: "You cannot consume this service",
    404: "no Route matched with those values",
    429: "Requests rate limit exceeded",
    500: "An unexpected error occurred",
    502: "An invalid response was received from the upstream server",
    503: "failure to get a peer from the ring-balancer",
    504: "The upstream server is timing out",
}


@dataclass
class Fault:
    """An error response served ``times`` times in a row, before validation.

    ``body=None`` picks the recorded/stock body for the status (dialect aware); a ``str``
    body is sent verbatim, a ``dict`` as JSON. ``headers`` are added (e.g. Retry-After).
    """

    status: int
    body: str | dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    times: int = 1

    def __post_init__(self) -> None:
        if self.times < 1:
            raise ValueError("Fault.times must be >= 1")


@dataclass
class Drop:
    """Start answering normally, then close the socket abruptly.

    Stream: send ``after_chunks`` ``data:`` events (the role chunk counts), then close
    without the final chunk, ``[DONE]`` or the chunked-encoding terminator.
    Non-stream: close the connection without any response.
    """

    after_chunks: int = 0
    reply: Reply | None = None


@dataclass
class CaptureReplay:
    """Serve a capture file's recorded response verbatim (status, headers, body bytes).

    ``path`` may be a path or a bare file name inside tests/captures. A capture
    recorded without SSE framing (fidelity ``sse-framing-stripped-by-recorder``) is re-framed.
    """

    path: str | Path
    capture: dict[str, Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.path = resolve_capture(self.path)
        self.capture = json.loads(Path(self.path).read_text(encoding="utf-8"))

    @property
    def status(self) -> int:
        return int(self.capture["response"]["status"])

    @property
    def body_text(self) -> str:
        """The recorded body; a stream whose SSE framing the recorder stripped (one JSON
        chunk per line) gets its ``data: ...\\n\\n`` framing and ``[DONE]`` back."""
        body = str(self.capture["response"]["body"])
        if self.capture.get("source", {}).get("fidelity") == "sse-framing-stripped-by-recorder":
            lines = [line for line in body.splitlines() if line.strip()]
            return "".join(f"data: {line}\n\n" for line in lines) + "data: [DONE]\n\n"
        return body

    @property
    def headers(self) -> dict[str, str]:
        """Recorded headers; a content-type is inferred when the recorder kept none."""
        headers = dict(self.capture["response"].get("headers") or {})
        if not any(k.lower() == "content-type" for k in headers):
            is_sse = self.body_text.startswith("data:")
            headers["Content-Type"] = (
                "text/event-stream; charset=utf-8" if is_sse else "application/json"
            )
        return headers

    @property
    def is_event_stream(self) -> bool:
        ctype = next(v for k, v in self.headers.items() if k.lower() == "content-type")
        return ctype.startswith("text/event-stream")


ScriptItem = Reply | Fault | Drop | CaptureReplay


def kong_body(status: int, request_id: str | None = None) -> str | None:
    """The gateway's body for ``status`` in the recorded multi-line layout, or None."""
    message = _KONG_MESSAGES.get(status)
    if message is None:
        return None
    if status == 429:
        # As quoted in pydantic-ai#1885: no request_id, compact.
        return json.dumps({"message": message}, separators=(",", ":"))
    rid = request_id or secrets.token_hex(16)
    return f'{{\n  "message":"{message}",\n  "request_id":"{rid}"\n}}'
