"""Server-sent-events framing for the chat stream (pure functions, no I/O).

Events, in order: ``context`` (what is being sent: chips, token counts, model, the question as
provenance records it), any number of ``thinking`` (``{"text"}``: a reasoning model's
thinking, shown apart from the answer),
``delta`` (``{"text"}``), and with tools ``tool_call`` (a call for the browser to run and
answer through ``POST tool_result``) and ``tool_result`` (a finished call, as the model reads
it: the shapes are in :mod:`.relay`), then ``usage``, ``provenance`` (the reply's record:
model, parameters, usage, cost, context labels, the SHA-256 of the body as POSTed — with
tools, of the loop's first request; an Insert puts it in the new cell's ``metadata.mistral``)
and ``done`` on success, or ``error`` (``{"message", "type", "partial"}``) and ``done`` on
failure. The cost guard may end the stream before anything is sent: ``error`` (type
``CostRefused``, past ``Mistral.session_budget``) or ``confirm`` (above
``Mistral.confirm_above``: what the request holds and may cost, :meth:`CostCheck.to_json`;
the browser asks, then sends the question again with ``confirmed: true``), then ``done``;
a tool loop's further round (an agent step among them) that would pass the budget ends it
with ``error`` (``CostRefused``). ``notice`` (``{"message", "kind"}``) may come at any point
before ``done``: what the client is waiting for, e.g. "rate limited, retrying in 3 s"
(``kind`` ``rate_limited``…), or, before the answer, what the user should know (``kind``
``info``: a deprecated model, a figure sent as words; ``kind`` ``tools``: why the tool loop
stopped early; ``kind`` ``agent``: the bound that ended an agent task). ``agent`` (Agent
mode, after each model reply and each step): the task's running totals
(:meth:`.agent.AgentTask.progress`). Every ``data:`` line is one JSON object.
"""

from __future__ import annotations

import json
from typing import Any

EVENT_TYPES = (
    "context",
    "confirm",
    "thinking",
    "delta",
    "tool_call",
    "tool_result",
    "agent",
    "notice",
    "usage",
    "provenance",
    "error",
    "done",
)


def encode_event(name: str, data: dict[str, Any]) -> bytes:
    """One SSE event. JSON never contains a raw newline, so ``data:`` is a single line."""
    if name not in EVENT_TYPES:
        raise ValueError(f"unknown event type {name!r}")
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {name}\ndata: {payload}\n\n".encode()


def decode_events(raw: bytes | str) -> list[tuple[str, dict[str, Any]]]:
    """Parse a whole SSE body back into ``(event, data)`` pairs (tests and benchmarks)."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    events: list[tuple[str, dict[str, Any]]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        if data:
            events.append((name, json.loads("\n".join(data))))
    return events
