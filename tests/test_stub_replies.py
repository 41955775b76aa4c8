"""The stub's successful replies (La Plateforme dialect), read raw off the socket."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.stub import Reply, StubServer, ToolCallSpec
from tests.stub.sse import chunks
from tests.stub.tokens import count_tokens

MODEL = "mistral-large-2407"
USER = [{"role": "user", "content": "Hi"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "plus",
            "description": "Sum two numbers.",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
            },
        },
    }
]


def body(**fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": USER, **fields}


def stream_text(events: list[dict[str, Any]], index: int = 0) -> str:
    parts = []
    for event in events:
        for choice in event["choices"]:
            content = choice["delta"].get("content")
            if choice["index"] == index and isinstance(content, str):
                parts.append(content)
    return "".join(parts)


def test_complete_body_is_shaped_like_the_2024_capture(stub, stub_http):
    stub.queue(Reply("Hello there."))
    response = stub_http.post("/chat/completions", json=body())
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    data = response.json()
    assert list(data) == ["id", "object", "created", "model", "choices", "usage"]
    assert re.fullmatch(r"[0-9a-f]{32}", data["id"])
    assert data["object"] == "chat.completion"
    assert data["model"] == MODEL
    assert isinstance(data["created"], int)
    choice = data["choices"][0]
    assert list(choice) == ["index", "message", "finish_reason"]
    assert choice["message"] == {"role": "assistant", "content": "Hello there.", "tool_calls": None}
    assert choice["finish_reason"] == "stop"
    assert list(data["usage"]) == ["prompt_tokens", "total_tokens", "completion_tokens"]
    usage = data["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    # Compact separators and raw UTF-8, as on the wire.
    assert response.text.startswith('{"id":"')


def test_model_alias_is_echoed_not_resolved(stub_http):
    data = stub_http.post("/chat/completions", json=body(model="mistral-large-latest")).json()
    assert data["model"] == "mistral-large-latest"


def test_default_reply_is_used_when_nothing_is_queued(stub, stub_http):
    data = stub_http.post("/chat/completions", json=body()).json()
    assert data["choices"][0]["message"]["content"] == stub.default_reply
    stub.default_reply = "Another default."
    data = stub_http.post("/chat/completions", json=body()).json()
    assert data["choices"][0]["message"]["content"] == "Another default."


def test_stream_is_framed_like_the_captures(stub, stub_http):
    stub.queue(Reply("Coca-Cola, often referred to as Coke."))
    response = stub_http.post("/chat/completions", json=body(stream=True))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["transfer-encoding"] == "chunked"
    events = chunks(response.text)
    assert len({e["id"] for e in events}) == 1
    assert re.fullmatch(r"[0-9a-f]{32}", events[0]["id"])
    first, last = events[0], events[-1]
    assert first["choices"] == [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
    ]
    for event in events[:-1]:
        assert list(event) == ["id", "object", "created", "model", "choices"]
        assert event["object"] == "chat.completion.chunk"
    assert list(last) == ["id", "object", "created", "model", "choices", "usage"]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["choices"][0]["delta"]["content"] == "."  # the last piece rides with usage
    assert stream_text(events) == "Coca-Cola, often referred to as Coke."
    # Real v3 token boundaries, as in stream-large-length-finish-2024.
    assert [e["choices"][0]["delta"]["content"] for e in events[1:6]] == [
        "C",
        "oca",
        "-",
        "Col",
        "a",
    ]
    assert last["usage"]["completion_tokens"] == len(events) - 1 + 1  # pieces + EOS


def test_explicit_chunks_are_streamed_as_given(stub, stub_http):
    stub.queue(Reply(chunks=["Hel", "lo ", "world"]))
    events = chunks(stub_http.post("/chat/completions", json=body(stream=True)).text)
    assert [e["choices"][0]["delta"]["content"] for e in events[1:]] == ["Hel", "lo ", "world"]
    stub.queue(Reply(chunks=["Hel", "lo ", "world"]))
    data = stub_http.post("/chat/completions", json=body()).json()
    assert data["choices"][0]["message"]["content"] == "Hello world"


def test_reply_text_and_chunks_must_agree():
    with pytest.raises(ValueError):
        Reply(text="abc", chunks=["x"])


def test_max_tokens_cuts_with_finish_length(stub, stub_http):
    text = "one two three four five six seven eight nine ten"
    stub.queue(Reply(text))
    data = stub_http.post("/chat/completions", json=body(max_tokens=4)).json()
    content = data["choices"][0]["message"]["content"]
    assert data["choices"][0]["finish_reason"] == "length"
    assert text.startswith(content) and content != text
    assert data["usage"]["completion_tokens"] == 4 == count_tokens(content)
    stub.queue(Reply(text))
    events = chunks(stub_http.post("/chat/completions", json=body(max_tokens=4, stream=True)).text)
    assert events[-1]["choices"][0]["finish_reason"] == "length"
    assert stream_text(events) == content
    assert events[-1]["choices"][0]["delta"]["content"]  # text rides on the final chunk


def test_max_tokens_truncates_tool_arguments(stub, stub_http):
    stub.queue(Reply(tool_calls=[ToolCallSpec("file_report", {"summary": "x " * 50})]))
    data = stub_http.post("/chat/completions", json=body(tools=TOOLS, max_tokens=8)).json()
    choice = data["choices"][0]
    assert choice["finish_reason"] == "length"
    arguments = choice["message"]["tool_calls"][0]["function"]["arguments"]
    assert '{"summary": "x x x x x'.startswith(arguments)


def test_prefix_is_echoed_at_the_start_of_the_reply(stub, stub_http):
    messages = [*USER, {"role": "assistant", "content": "Sure! ", "prefix": True}]
    stub.queue(Reply("Here you go."))
    data = stub_http.post("/chat/completions", json=body(messages=messages)).json()
    assert data["choices"][0]["message"]["content"] == "Sure! Here you go."
    stub.queue(Reply("Here you go."))
    events = chunks(
        stub_http.post("/chat/completions", json=body(messages=messages, stream=True)).text
    )
    assert stream_text(events) == "Sure! Here you go."


def test_json_object_mode_default_reply_is_json(stub_http):
    data = stub_http.post(
        "/chat/completions", json=body(response_format={"type": "json_object"})
    ).json()
    assert isinstance(json.loads(data["choices"][0]["message"]["content"]), dict)


def test_json_schema_mode_default_reply_fits_the_schema(stub_http):
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "kind": {"enum": ["a", "b"]},
        },
        "required": ["name", "age", "tags", "kind"],
        "additionalProperties": False,
    }
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": schema, "strict": True},
    }
    data = stub_http.post("/chat/completions", json=body(response_format=response_format)).json()
    value = json.loads(data["choices"][0]["message"]["content"])
    assert set(value) == {"name", "age", "tags", "kind"}
    assert isinstance(value["name"], str) and isinstance(value["age"], int)
    assert value["kind"] == "a" and all(isinstance(t, str) for t in value["tags"])


def test_tool_call_reply_shape(stub, stub_http):
    stub.queue(Reply(tool_calls=[ToolCallSpec("plus", {"a": 1, "b": 2}, id="D681PevKs")]))
    data = stub_http.post("/chat/completions", json=body(tools=TOOLS)).json()
    choice = data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "D681PevKs",
                "type": "function",
                "function": {"name": "plus", "arguments": '{"a": 1, "b": 2}'},
                "index": 0,
            }
        ],
    }


def test_tool_call_ids_are_generated_like_the_api():
    assert re.fullmatch(r"[a-zA-Z0-9]{9}", ToolCallSpec("f").id or "")
    assert ToolCallSpec("f", '{"raw": true}').arguments_json == '{"raw": true}'


def test_parallel_tool_calls_stream_whole_in_one_delta(stub, stub_http):
    calls = [ToolCallSpec("plus", {"a": 1, "b": 2}), ToolCallSpec("minus", {"a": 2, "b": 1})]
    stub.queue(Reply(tool_calls=calls))
    events = chunks(stub_http.post("/chat/completions", json=body(tools=TOOLS, stream=True)).text)
    assert len(events) == 2
    final = events[-1]
    choice = final["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert "usage" in final
    assert [c["function"]["name"] for c in choice["delta"]["tool_calls"]] == ["plus", "minus"]
    assert [c["index"] for c in choice["delta"]["tool_calls"]] == [0, 1]
    assert [c["id"] for c in choice["delta"]["tool_calls"]] == [c.id for c in calls]
    assert json.loads(choice["delta"]["tool_calls"][1]["function"]["arguments"]) == {"a": 2, "b": 1}


@pytest.mark.parametrize(
    "tool_choice", ["any", "required", {"type": "function", "function": {"name": "plus"}}]
)
def test_forced_tool_choice_calls_a_tool_by_default(stub_http, tool_choice):
    data = stub_http.post(
        "/chat/completions", json=body(tools=TOOLS, tool_choice=tool_choice)
    ).json()
    call = data["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "plus"
    assert set(json.loads(call["function"]["arguments"])) == {"a", "b"}


@pytest.mark.parametrize("tool_choice", ["auto", "none"])
def test_unforced_tool_choice_answers_in_text_by_default(stub, stub_http, tool_choice):
    data = stub_http.post(
        "/chat/completions", json=body(tools=TOOLS, tool_choice=tool_choice)
    ).json()
    assert data["choices"][0]["message"] == {
        "role": "assistant",
        "content": stub.default_reply,
        "tool_calls": None,
    }


def test_usage_can_be_scripted(stub, stub_http):
    usage = {"prompt_tokens": 1, "total_tokens": 3, "completion_tokens": 2}
    stub.queue(Reply("x", usage=usage), Reply("x", usage=usage))
    assert stub_http.post("/chat/completions", json=body()).json()["usage"] == usage
    events = chunks(stub_http.post("/chat/completions", json=body(stream=True)).text)
    assert events[-1]["usage"] == usage


def test_finish_reason_can_be_scripted(stub, stub_http):
    stub.queue(Reply("x", finish_reason="model_length"))
    data = stub_http.post("/chat/completions", json=body()).json()
    assert data["choices"][0]["finish_reason"] == "model_length"


def test_prompt_tokens_are_counted_with_the_v3_tokenizer(stub_http):
    hi = stub_http.post("/chat/completions", json=body()).json()["usage"]["prompt_tokens"]
    assert hi == 4  # <s> [INST] Hi [/INST]
    system = [{"role": "system", "content": "You are terse."}, *USER]
    more = stub_http.post("/chat/completions", json=body(messages=system)).json()
    assert more["usage"]["prompt_tokens"] > hi
    tools = stub_http.post("/chat/completions", json=body(tools=TOOLS)).json()
    assert tools["usage"]["prompt_tokens"] > hi + 20
    safe = stub_http.post("/chat/completions", json=body(safe_prompt=True)).json()
    assert safe["usage"]["prompt_tokens"] > hi + 20


def test_n_choices_non_stream(stub, stub_http):
    stub.queue(Reply("Aardvark"))
    data = stub_http.post("/chat/completions", json=body(n=2)).json()
    assert [c["index"] for c in data["choices"]] == [0, 1]
    assert {c["message"]["content"] for c in data["choices"]} == {"Aardvark"}
    single = count_tokens("Aardvark") + 1
    assert data["usage"]["completion_tokens"] == 2 * single


def test_n_choices_stream_interleaved_like_the_n2_capture(stub, stub_http):
    stub.queue(Reply("Aardvark Whisper"))
    events = chunks(stub_http.post("/chat/completions", json=body(n=2, stream=True)).text)
    roles = [e for e in events if e["choices"][0]["delta"].get("role")]
    assert [e["choices"][0]["index"] for e in roles] == [0, 1]
    assert events[0] is roles[0] and events[1] is roles[1]
    indexes = [e["choices"][0]["index"] for e in events[2:]]
    assert indexes[:4] == [0, 1, 0, 1]
    assert all(len(e["choices"]) == 1 for e in events)
    assert [("usage" in e) for e in events].count(True) == 1 and "usage" in events[-1]
    finishes = [e["choices"][0] for e in events if e["choices"][0]["finish_reason"]]
    assert sorted(c["index"] for c in finishes) == [0, 1]
    assert stream_text(events, 0) == stream_text(events, 1) == "Aardvark Whisper"


def test_thinking_reply_matches_the_reasoning_captures(stub, stub_http):
    stub.queue(Reply("144", thinking="12 times 12 is 144."))
    data = stub_http.post("/chat/completions", json=body()).json()
    content = data["choices"][0]["message"]["content"]
    assert content == [
        {
            "type": "thinking",
            "thinking": [{"type": "text", "text": "12 times 12 is 144."}],
            "closed": True,
        },
        {"type": "text", "text": "144"},
    ]
    stub.queue(Reply("144", thinking="12 times 12 is 144."))
    events = chunks(stub_http.post("/chat/completions", json=body(stream=True)).text)
    deltas = [e["choices"][0]["delta"]["content"] for e in events[1:]]
    assert deltas[0] == ""
    thinking = [d for d in deltas if isinstance(d, list)]
    assert thinking[-1] == [{"type": "thinking", "thinking": []}]
    assert "".join(d[0]["thinking"][0]["text"] for d in thinking[:-1]) == "12 times 12 is 144."
    assert stream_text(events) == "144"
    assert events[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.fixture(scope="module")
def module_client() -> Iterator[tuple[StubServer, httpx.Client]]:
    with StubServer() as server:
        headers = {"Authorization": f"Bearer {server.api_key}"}
        with httpx.Client(base_url=server.base_url, headers=headers) as client:
            yield server, client


@settings(max_examples=30, deadline=None)
@given(text=st.text(max_size=80))
def test_stream_and_complete_say_the_same(
    module_client: tuple[StubServer, httpx.Client], text: str
) -> None:
    server, client = module_client
    server.queue(Reply(text), Reply(text))
    data = client.post("/chat/completions", json=body()).json()
    events = chunks(client.post("/chat/completions", json=body(stream=True)).text)
    assert data["choices"][0]["message"]["content"] == text
    assert stream_text(events) == text
    assert data["usage"]["completion_tokens"] == events[-1]["usage"]["completion_tokens"]
