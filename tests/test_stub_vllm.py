"""The stub in vLLM's OpenAI-compatible dialect (``vllm serve ... --tool-call-parser mistral``)."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from tests.stub import Fault, Reply, StubServer, ToolCallSpec
from tests.stub.sse import chunks

MODEL = "mistral-large-2407"
USER = [{"role": "user", "content": "Hi"}]
TOOLS = [{"type": "function", "function": {"name": "plus", "parameters": {"type": "object"}}}]


@pytest.fixture
def vllm(stub: StubServer, stub_http: httpx.Client) -> httpx.Client:
    stub.dialect = "vllm"
    return stub_http


def body(**fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": USER, **fields}


def error(response: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    data = response.json()
    assert list(data) == ["error"]
    assert list(data["error"]) == ["message", "type", "param", "code"]
    assert data["error"]["code"] == status
    return data["error"]


def test_openai_fields_accepted_and_unknown_ones_ignored(vllm):
    fields = {
        "seed": 1,
        "max_completion_tokens": 20,
        "stream_options": {"include_usage": True},
        "top_k": 5,
        "random_seed": 3,
        "made_up": {"x": 1},
    }
    messages = [{"role": "user", "content": "Hi", "name": "ann"}]
    response = vllm.post("/chat/completions", json=body(messages=messages, **fields))
    assert response.status_code == 200, response.text


def test_completion_shape(stub, vllm):
    stub.queue(Reply("Hello."))
    data = vllm.post("/chat/completions", json=body()).json()
    assert re.fullmatch(r"chatcmpl-[0-9a-f]{32}", data["id"])
    assert list(data)[:5] == ["id", "object", "created", "model", "choices"]
    choice = data["choices"][0]
    assert choice["message"]["content"] == "Hello."
    assert choice["message"]["tool_calls"] == []
    assert choice["finish_reason"] == "stop" and choice["stop_reason"] is None
    assert set(data["usage"]) >= {"prompt_tokens", "completion_tokens", "total_tokens"}


def test_tool_calls_non_stream(stub, vllm):
    stub.queue(Reply(tool_calls=[ToolCallSpec("plus", {"a": 1})]))
    data = vllm.post("/chat/completions", json=body(tools=TOOLS)).json()
    message = data["choices"][0]["message"]
    assert message["content"] is None
    call = message["tool_calls"][0]
    assert re.fullmatch(r"[a-zA-Z0-9]{9}", call["id"])
    assert call["type"] == "function" and call["function"]["arguments"] == '{"a": 1}'
    assert data["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_choice_any_is_refused(vllm):
    data = error(vllm.post("/chat/completions", json=body(tools=TOOLS, tool_choice="any")))
    assert data["message"] == 'Only named tools, "none", "auto" or "required" are supported'
    for choice in ("required", "auto", "none", {"type": "function", "function": {"name": "plus"}}):
        assert vllm.post("/chat/completions", json=body(tools=TOOLS, tool_choice=choice)).is_success


def test_stream_has_no_usage_unless_asked(stub, vllm):
    stub.queue(Reply("one two"))
    events = chunks(vllm.post("/chat/completions", json=body(stream=True)).text)
    assert all("usage" not in e for e in events)
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(re.fullmatch(r"chatcmpl-[0-9a-f]{32}", e["id"]) for e in events)


def test_stream_usage_chunk_when_include_usage(stub, vllm):
    stub.queue(Reply("one two"))
    sent = body(stream=True, stream_options={"include_usage": True})
    events = chunks(vllm.post("/chat/completions", json=sent).text)
    last = events[-1]
    assert last["choices"] == [] and last["usage"]["completion_tokens"] > 0
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in e for e in events[:-1])


def test_tool_calls_stream_incrementally(stub, vllm):
    stub.queue(Reply(tool_calls=[ToolCallSpec("plus", {"a": 1, "b": 22}, id="abcDEF123")]))
    events = chunks(vllm.post("/chat/completions", json=body(tools=TOOLS, stream=True)).text)
    deltas = [e["choices"][0]["delta"] for e in events[1:]]
    assert deltas[0]["tool_calls"] == [
        {
            "index": 0,
            "id": "abcDEF123",
            "type": "function",
            "function": {"name": "plus", "arguments": ""},
        }
    ]
    fragments = [d["tool_calls"][0] for d in deltas[1:]]
    assert len(fragments) > 2
    assert all(set(f) == {"index", "function"} and set(f["function"]) == {"arguments"}
               for f in fragments)  # fmt: skip
    assert json.loads("".join(f["function"]["arguments"] for f in fragments)) == {"a": 1, "b": 22}
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_max_completion_tokens_cuts(stub, vllm):
    stub.queue(Reply("one two three four five six"))
    data = vllm.post("/chat/completions", json=body(max_completion_tokens=2)).json()
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 2


def test_errors_are_openai_shaped(vllm):
    unknown = error(vllm.post("/chat/completions", json=body(model="nope")), 404)
    assert unknown["message"] == "The model `nope` does not exist."
    assert unknown["type"] == "NotFoundError"
    messages = [*USER, {"role": "assistant", "content": "x"}]
    order = error(vllm.post("/chat/completions", json=body(messages=messages)))
    assert order["message"].startswith("Expected last role User or Tool")
    assert error(vllm.post("/chat/completions", json=body(temperature="hot")))["type"] == (
        "BadRequestError"
    )
    assert error(vllm.post("/chat/completions", json=body(temperature=-1)))["message"] == (
        "temperature must be non-negative, got -1.0."
    )
    context = error(vllm.post("/chat/completions", json=body(max_tokens=131072)))
    assert context["message"].startswith("This model's maximum context length is 131072 tokens.")


def test_continue_final_message_allows_a_last_assistant_turn(stub, vllm):
    stub.queue(Reply(" world"))
    messages = [*USER, {"role": "assistant", "content": "Hello"}]
    sent = body(messages=messages, continue_final_message=True, add_generation_prompt=False)
    data = vllm.post("/chat/completions", json=sent).json()
    assert data["choices"][0]["message"]["content"] == " world"


def test_auth_and_models(stub, vllm):
    unauthorized = httpx.get(f"{stub.base_url}/models")
    assert (unauthorized.status_code, unauthorized.json()) == (401, {"error": "Unauthorized"})
    cards = vllm.get("/models").json()
    assert cards["object"] == "list"
    card = cards["data"][0]
    assert card["owned_by"] == "vllm" and card["max_model_len"] == 131072
    assert card["root"] and card["permission"][0]["object"] == "model_permission"
    assert "capabilities" not in card
    assert vllm.get("/nowhere").json() == {"detail": "Not Found"}


def test_dialect_switches_at_any_time(stub, stub_http):
    stub.dialect = "vllm"
    assert stub_http.post("/chat/completions", json=body(seed=1)).status_code == 200
    stub.dialect = "mistral"
    assert stub_http.post("/chat/completions", json=body(seed=1)).status_code == 422


def test_faults_take_the_vllm_shape(stub, vllm):
    stub.queue(Fault(401), Fault(503))
    assert vllm.post("/chat/completions", json=body()).json() == {"error": "Unauthorized"}
    assert error(vllm.post("/chat/completions", json=body()), 503)["message"] == (
        "Service Unavailable"
    )
