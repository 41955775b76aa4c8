"""The tool loop's async driver (the Jupyter server's) keeps the blocking driver's rules:
the same requests, the same reports in the same order, the same bounds. No model here: the
replies are scripted completions, the executor an async function."""

from __future__ import annotations

import asyncio
from typing import Any

from mistral_magic.api.types import Choice, Completion, ToolCall
from mistral_magic.engine.tool_loop import (
    ToolEvent,
    ToolLimits,
    arun_tool_loop,
    run_tool_loop,
)


def _completion(text: str = "", calls: list[ToolCall] | None = None) -> Completion:
    choice = Choice(
        content=text, tool_calls=calls or [], finish_reason="tool_calls" if calls else "stop"
    )
    return Completion(id="x", model="m", created=0, choices=[choice], usage=None)


def _call(name: str, call_id: str = "abcDEF123") -> ToolCall:
    return ToolCall(call_id, name, {"name": "df"}, raw_arguments='{"name": "df"}')


class _Sync:
    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.left: list[float] = []

    def run(self, call: ToolCall, event: ToolEvent, limits: ToolLimits) -> ToolEvent:
        self.left.append(limits.max_seconds)
        return ToolEvent(
            event.call_id, call.name, call.arguments, "ok", f"ran {call.name}", self.seconds
        )


class _Async(_Sync):
    async def run(self, call: ToolCall, event: ToolEvent, limits: ToolLimits) -> ToolEvent:  # type: ignore[override]
        await asyncio.sleep(0)
        return super().run(call, event, limits)


def _script() -> list[Completion]:
    return [
        _completion("Let me look.", [_call("describe_variable"), _call("list_variables", "xyz")]),
        _completion("", [_call("describe_variable", "call_1")]),
        _completion("Done."),
    ]


Outcome = tuple[
    list[tuple[list[dict[str, Any]], dict[str, Any]]], list[tuple[str, str]], Any, list[float]
]
USER = [{"role": "user", "content": "Hi"}]


def _blocking(limits: ToolLimits, seconds: float) -> Outcome:
    replies, sent, reports, executor = _script(), [], [], _Sync(seconds)

    def send(messages: list[dict[str, Any]], params: dict[str, Any], lead: str) -> Completion:
        sent.append(([dict(m) for m in messages], dict(params)))
        return replies.pop(0)

    result = run_tool_loop(
        send,
        USER,
        executor,
        params={"tools": []},
        limits=limits,
        on_tool=lambda e: reports.append((e.name, e.status)),
    )
    return sent, reports, result, executor.left


def _awaited(limits: ToolLimits, seconds: float) -> Outcome:
    replies, sent, reports, executor = _script(), [], [], _Async(seconds)

    async def send(messages: list[dict[str, Any]], params: dict[str, Any], lead: str) -> Completion:
        sent.append(([dict(m) for m in messages], dict(params)))
        return replies.pop(0)

    async def report(event: ToolEvent) -> None:
        reports.append((event.name, event.status))

    result = asyncio.run(
        arun_tool_loop(send, USER, executor, params={"tools": []}, limits=limits, on_tool=report)
    )
    return sent, reports, result, executor.left


def _both(limits: ToolLimits, seconds: float = 0.0) -> tuple[Outcome, Outcome]:
    return _blocking(limits, seconds), _awaited(limits, seconds)


def test_async_driver_sends_and_reports_what_the_blocking_one_does() -> None:
    blocking, awaited = _both(ToolLimits())
    assert blocking[0] == awaited[0]  # every request, byte for byte
    assert blocking[1] == awaited[1]
    assert awaited[1] == [
        ("describe_variable", "running"),
        ("describe_variable", "ok"),
        ("list_variables", "running"),
        ("list_variables", "ok"),
        ("describe_variable", "running"),
        ("describe_variable", "ok"),
    ]
    result = awaited[2]
    assert result.rounds == 2
    assert result.completion.content == "Let me look.\n\nDone."
    # the remapped id of an OpenAI-style call is the same in the assistant and tool messages
    last = awaited[0][-1][0]
    assert last[-1]["role"] == "tool"
    assert last[-2]["tool_calls"][0]["id"] == last[-1]["tool_call_id"]


def test_async_driver_keeps_the_bounds_and_passes_what_is_left() -> None:
    blocking, awaited = _both(ToolLimits(max_rounds=1, max_seconds=10.0), seconds=4.0)
    assert blocking[0] == awaited[0]
    sent = awaited[0]
    assert sent[-1][1]["tool_choice"] == "none"  # after one round the model must answer
    assert awaited[2].note.startswith("stopped calling tools after 1 round")
    assert awaited[3] == [10.0, 6.0]  # each call is told the tool time that is left
