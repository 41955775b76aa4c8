"""Sending a :class:`PreparedRequest` and streaming its reply, with the tool loop when the
model may call tools; and the one-line footer under a reply (model, tokens, cost, notes).

The client is the caller's (leased from the session's :class:`~.clients.Clients`), and so is
the tool executor (:class:`~.tool_loop.LocalTools` in a kernel; the Jupyter server can pass
one that runs the tools in a notebook's kernel).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .prepare import PreparedRequest, WireTarget
from .tool_loop import ToolLimits
from .usage import PriceLookup, estimate_cost, format_cost

if TYPE_CHECKING:
    from ..api.client import MistralClient
    from ..api.retry import OnNotice
    from ..api.types import Completion
    from .guard import RoundGuard
    from .tool_loop import OnTool, ToolExecutor

TextCallback = Callable[[str], None]


def answer(
    client: MistralClient,
    prepared: PreparedRequest,
    on_text: TextCallback,
    *,
    executor: ToolExecutor | None = None,
    limits: ToolLimits | None = None,
    on_tool: OnTool | None = None,
    on_notice: OnNotice | None = None,
    on_thinking: TextCallback | None = None,
    guard: RoundGuard | None = None,
) -> Completion:
    """Send ``prepared`` with ``client`` and stream the reply, calling ``on_text`` with the
    text so far, and ``on_thinking`` with a reasoning model's thinking so far (it is never
    part of the text: not of ``completion.content``, code blocks or the conversation).

    With tools (``prepared.toolbox`` and an ``executor``), runs the tools the model calls,
    reporting each to ``on_tool`` as it starts and ends, until the model answers in text
    (within ``limits``); the completion then holds the text of every round and the usage
    summed over them, and ``prepared.tool_events`` the calls.

    ``on_notice`` hears what the client waits for before a retry (a 429's Retry-After).
    ``guard`` checks each further request of a tool loop before it is sent (the session
    budget, :func:`~.guard.round_guard`). Raises a ``MistralError`` (its ``.partial`` holds
    what arrived) or lets ``KeyboardInterrupt`` through; either way ``on_text`` has shown the
    partial text. ``prepared.sent_sha256`` is the SHA-256 of the first body as POSTed.
    """
    # The settings may have changed the server or dialect since the request was prepared.
    prepared.retarget(WireTarget(client.base_url, client.dialect))
    thought = _Thinking(on_thinking)
    sent: list[str] = []
    if not prepared.toolbox or executor is None:
        messages, params = prepared.send_arguments()
        try:
            return _stream(client, messages, params, on_text, "", on_notice, thought, sent)
        finally:
            prepared.sent_sha256 = sent[0] if sent else ""
    from .tool_loop import run_tool_loop

    done: list[Completion] = []

    def send(messages: list[dict[str, Any]], params: dict[str, Any], lead: str) -> Completion:
        request = {"model": prepared.model, **params}
        if guard is not None and done:
            guard(messages, request, done)
        completion = _stream(client, messages, request, on_text, lead, on_notice, thought, sent)
        prepared.sent_sha256 = sent[0]
        done.append(completion)
        return completion

    result = run_tool_loop(
        send,
        prepared.messages,
        executor,
        params=prepared.params,
        limits=limits or ToolLimits(),
        on_tool=on_tool,
    )
    prepared.tool_events = result.events
    prepared.tool_note = result.note
    return result.completion


def _stream(
    client: MistralClient,
    messages: list[dict[str, Any]],
    params: dict[str, Any],
    on_text: TextCallback,
    lead: str = "",
    on_notice: OnNotice | None = None,
    thought: _Thinking | None = None,
    sent: list[str] | None = None,
) -> Completion:
    stream = client.stream(messages, on_notice=on_notice, **params)
    text = lead
    thought = thought or _Thinking(None)
    thought.new_round()
    try:
        for delta in stream:
            if delta.index != 0:
                continue
            if delta.thinking:
                thought.add(delta.thinking)
            if delta.text:
                text += delta.text
                on_text(text)
    finally:
        if sent is not None and stream.request_sha256:
            sent.append(stream.request_sha256)
    return stream.completion


class _Thinking:
    """A reasoning model's thinking so far, over every round of a tool loop, for
    ``on_thinking`` (rounds apart by a blank line)."""

    def __init__(self, on_thinking: TextCallback | None) -> None:
        self.on_thinking = on_thinking
        self.text = ""
        self._fresh = False

    def new_round(self) -> None:
        self._fresh = bool(self.text)

    def add(self, piece: str) -> None:
        if self.on_thinking is None:
            return
        if self._fresh:
            self.text += "\n\n"
            self._fresh = False
        self.text += piece
        self.on_thinking(self.text)


def footer(prepared: PreparedRequest, completion: Completion, price: PriceLookup) -> str:
    """One line under a reply: model, tokens, estimated cost, notes."""
    model = completion.model or prepared.model
    parts = [model]
    usage = completion.usage
    if usage is not None:
        parts.append(f"{usage.prompt_tokens:,} → {usage.completion_tokens:,} tokens")
        cost = estimate_cost(model, usage.prompt_tokens, usage.completion_tokens, price)
        parts.append(format_cost(cost))
    if completion.finish_reason == "length":
        parts.append("reply cut at max_tokens")
    if prepared.tool_events:
        count = len(prepared.tool_events)
        parts.append(f"{count} tool call{'s' if count != 1 else ''}")
    if prepared.tool_note:
        parts.append(prepared.tool_note)
    if prepared.context_note:
        parts.append(prepared.context_note)
    return " · ".join(parts)
