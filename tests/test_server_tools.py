"""The sidebar's tool calls through the server extension (pytest-jupyter, the stub as the
model): each call is relayed to "the browser" (this test, reading the SSE stream) and its
result, POSTed to ``tool_result``, reaches the model in the next request."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from mistral_magic.server.events import decode_events
from tests.sidebar_client import DESCRIBE, StreamedChat, post_tool_result, tool_chat_body
from tests.stub import Reply, StubServer, ToolCallSpec


async def test_a_call_is_relayed_and_its_result_reaches_the_model(
    lab_stub: StubServer,
    jp_fetch: Any,
    http_server_client: Any,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
) -> None:
    lab_stub.queue(
        Reply(tool_calls=[ToolCallSpec("describe_variable", {"name": "sales"})]),
        Reply("sales has 3 rows."),
    )
    chat = StreamedChat(
        http_server_client, jp_base_url, jp_auth_header, tool_chat_body("req-tools")
    )
    call = await chat.event("tool_call")
    assert call["name"] == "describe_variable" and call["arguments"] == {"name": "sales"}
    assert call["runner"] == "kernel" and call["request_id"] == "req-tools"
    assert call["signature"] == 'describe_variable(name="sales")'
    assert call["max_chars"] == 4000 and 0 < call["timeout_ms"] <= 60_000
    # the first request offered exactly the kernel's tools
    assert lab_stub.chat_requests[0].body["tools"] == [DESCRIBE]
    key = lab_stub.api_key
    text = f"sales: DataFrame 3×2 (region, amount); token {key}"
    accepted = await post_tool_result(
        jp_fetch, request_id="req-tools", call_id=call["call_id"], status="ok", result=text
    )
    assert accepted == {"accepted": True}
    events = await chat.events()
    names = [n for n, d in events if not (n == "notice" and d.get("kind") == "info")]
    names = [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]  # deltas as one
    assert names == ["context", "tool_call", "tool_result", "delta", "usage", "provenance", "done"]
    done = dict(events)["tool_result"]
    assert done["status"] == "ok" and done["call_id"] == call["call_id"]
    assert key not in json.dumps(events)  # redacted by the server too
    # the model read the result, after its own call, in a valid history
    messages = lab_stub.chat_requests[-1].body["messages"]
    assert messages[-2]["tool_calls"][0]["function"]["name"] == "describe_variable"
    assert messages[-1]["role"] == "tool" and "DataFrame 3×2" in messages[-1]["content"]
    assert key not in messages[-1]["content"]
    history = json.loads((await jp_fetch("mistral-magic", "history")).body)["entries"]
    assert history[-1]["text"] == "sales has 3 rows."
    assert history[-1]["tools"][0]["signature"] == 'describe_variable(name="sales")'
    # a second result for the same call is late, not an error
    again = await post_tool_result(
        jp_fetch, request_id="req-tools", call_id=call["call_id"], status="ok", result="x"
    )
    assert again == {"accepted": False}


async def test_a_result_that_never_comes_is_an_error_for_the_model(
    lab_stub: StubServer,
    service: Any,
    jp_fetch: Any,
    http_server_client: Any,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
) -> None:
    service.settings.max_tool_seconds = 0.5  # the bound of the wait
    lab_stub.queue(
        Reply(tool_calls=[ToolCallSpec("describe_variable", {"name": "sales"})]),
        Reply("I could not check."),
    )
    chat = StreamedChat(http_server_client, jp_base_url, jp_auth_header, tool_chat_body("req-late"))
    call = await chat.event("tool_call")
    events = await chat.events()  # nobody answers: the wait ends at the bound
    done = next(d for n, d in events if n == "tool_result")
    assert done["status"] == "error" and "did not return" in done["result"]
    assert "Mistral.max_tool_seconds" in lab_stub.chat_requests[-1].body["messages"][-1]["content"]
    assert [n for n, _ in events][-1] == "done"
    late = await post_tool_result(
        jp_fetch, request_id="req-late", call_id=call["call_id"], status="ok", result="x"
    )
    assert late == {"accepted": False}
    assert len(service.pending) == 0


async def test_the_rounds_are_bounded_by_the_magics_setting(
    lab_stub: StubServer,
    service: Any,
    jp_fetch: Any,
    http_server_client: Any,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
) -> None:
    service.settings.max_tool_rounds = 1
    lab_stub.queue(
        Reply(tool_calls=[ToolCallSpec("describe_variable", {"name": "sales"})]),
        Reply("Enough."),
    )
    chat = StreamedChat(
        http_server_client, jp_base_url, jp_auth_header, tool_chat_body("req-rounds")
    )
    call = await chat.event("tool_call")
    await post_tool_result(
        jp_fetch, request_id="req-rounds", call_id=call["call_id"], status="ok", result="3 rows"
    )
    events = await chat.events()
    assert lab_stub.chat_requests[-1].body["tool_choice"] == "none"
    notices = [d for n, d in events if n == "notice" and d["kind"] == "tools"]
    assert "Mistral.max_tool_rounds" in notices[0]["message"]


async def test_tools_off_on_the_server_are_not_offered(
    lab_stub: StubServer, service: Any, jp_fetch: Any
) -> None:
    service.server.tools = False
    config = json.loads((await jp_fetch("mistral-magic", "config")).body)
    assert config["tools"] is False
    lab_stub.queue(Reply("No tools."))
    response = await jp_fetch(
        "mistral-magic", "chat", method="POST", body=tool_chat_body("req-off")
    )
    assert "tool_call" not in [n for n, _ in decode_events(response.body)]
    assert "tools" not in lab_stub.chat_requests[-1].body


@pytest.mark.parametrize(
    "tools",
    [
        "describe_variable",
        [{"type": "function", "function": {"name": "bad name!", "parameters": {}}}],
        [DESCRIBE, DESCRIBE],
        [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}],
        [DESCRIBE] * 129,
    ],
)
async def test_tool_definitions_from_the_browser_are_checked(
    lab_stub: StubServer, jp_fetch: Any, tools: Any
) -> None:
    with pytest.raises(HTTPClientError) as refused:
        await jp_fetch(
            "mistral-magic", "chat", method="POST", body=tool_chat_body("req-bad", tools=tools)
        )
    assert refused.value.code == 400
    assert lab_stub.chat_requests == []


async def test_tool_result_bodies_are_checked_and_bounded(
    lab_stub: StubServer, jp_fetch: Any
) -> None:
    for body in (
        {"request_id": "r", "call_id": "c", "status": "maybe", "result": "x"},
        {"request_id": "r", "call_id": 3, "status": "ok", "result": "x"},
        [],
    ):
        with pytest.raises(HTTPClientError) as refused:
            await jp_fetch("mistral-magic", "tool_result", method="POST", body=json.dumps(body))
        assert refused.value.code == 400
    huge = {"request_id": "r", "call_id": "c", "status": "ok", "result": "x" * 200_000}
    with pytest.raises(HTTPClientError) as refused:
        await jp_fetch("mistral-magic", "tool_result", method="POST", body=json.dumps(huge))
    assert refused.value.code == 413
    with pytest.raises(HTTPClientError) as anonymous:
        await jp_fetch(
            "mistral-magic",
            "tool_result",
            method="POST",
            body=json.dumps({"request_id": "r", "call_id": "c", "status": "ok", "result": ""}),
            headers={"Authorization": ""},
        )
    assert anonymous.value.code == 403


def test_the_history_keeps_tool_lines_bounded(tmp_path: Any) -> None:
    from mistral_magic.server.history import (
        MAX_TOOL_LINES,
        TOOL_LINE_RESULT_CHARS,
        HistoryStore,
    )

    store = HistoryStore(tmp_path)
    line = {"name": "f", "signature": "f()", "status": "ok", "result": "x" * 50_000}
    store.append("ana", {"role": "assistant", "text": "Done.", "tools": [line] * 100})
    kept = store.load("ana")[-1]["tools"]
    assert len(kept) == MAX_TOOL_LINES
    assert len(kept[0]["result"]) < TOOL_LINE_RESULT_CHARS + 20
