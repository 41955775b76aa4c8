"""The official ``mistralai`` SDK, pointed at the stub, cannot tell it from La Plateforme.

SDK 1.x/2.x export ``Mistral`` from ``mistralai``; 3.x moved it to ``mistralai.client``. Its
``server_url`` is the API root without ``/v1`` (the SDK adds ``/v1/chat/completions``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.stub import Fault, Reply, StubServer, ToolCallSpec

try:
    from mistralai.client import Mistral, errors
except ImportError:  # SDK 1.x / 2.x
    from mistralai import Mistral  # type: ignore[no-redef,attr-defined]
    from mistralai import models as errors  # type: ignore[no-redef]

MODEL = "mistral-large-2407"
USER: list[Any] = [{"role": "user", "content": "Hi"}]
TOOLS: list[Any] = [
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


@pytest.fixture
def sdk(stub: StubServer) -> Iterator[Mistral]:
    with Mistral(api_key=stub.api_key, server_url=stub.root_url) as client:
        yield client


def test_complete(stub, sdk):
    stub.queue(Reply("Hello from the stub."))
    response = sdk.chat.complete(model=MODEL, messages=USER, temperature=0.3, max_tokens=50)
    assert response.model == MODEL
    assert len(response.id) == 32 and response.object == "chat.completion"
    choice = response.choices[0]
    assert choice.message.content == "Hello from the stub."
    assert choice.finish_reason == "stop"
    usage = response.usage
    assert usage.prompt_tokens == 4
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    sent = stub.last_request
    assert sent.path == "/v1/chat/completions" and sent.headers["accept"] == "application/json"
    assert sent.body["temperature"] == 0.3


def test_stream(stub, sdk):
    stub.queue(Reply("Counting: 1, 2, 3."))
    events = list(sdk.chat.stream(model=MODEL, messages=USER))
    assert stub.last_request.headers["accept"] == "text/event-stream"
    chunks = [event.data for event in events]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content for c in chunks if c.choices[0].delta.content)
    assert text == "Counting: 1, 2, 3."
    assert all(c.usage is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.usage.completion_tokens > 0 and last.usage.prompt_tokens == 4
    assert len({c.id for c in chunks}) == 1


def test_stream_cut_by_max_tokens(stub, sdk):
    stub.queue(Reply("one two three four five six seven"))
    events = list(sdk.chat.stream(model=MODEL, messages=USER, max_tokens=3))
    assert events[-1].data.choices[0].finish_reason == "length"
    assert events[-1].data.usage.completion_tokens == 3


def test_tool_calls_complete(stub, sdk):
    stub.queue(Reply(tool_calls=[ToolCallSpec("plus", {"a": 1, "b": 2})]))
    response = sdk.chat.complete(model=MODEL, messages=USER, tools=TOOLS, tool_choice="any")
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "plus"
    assert json.loads(call.function.arguments) == {"a": 1, "b": 2}
    assert len(call.id) == 9 and call.id.isalnum()
    # The assistant turn goes back as received, then the tool result: accepted.
    followup = [
        *USER,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "name": "plus", "content": "3", "tool_call_id": call.id},
    ]
    stub.queue(Reply("It is 3."))
    answer = sdk.chat.complete(model=MODEL, messages=followup, tools=TOOLS)
    assert answer.choices[0].message.content == "It is 3."


def test_tool_calls_stream_whole(stub, sdk):
    calls = [ToolCallSpec("plus", {"a": 1, "b": 2}), ToolCallSpec("plus", {"a": 3, "b": 4})]
    stub.queue(Reply(tool_calls=calls))
    events = list(sdk.chat.stream(model=MODEL, messages=USER, tools=TOOLS))
    assert len(events) == 2
    final = events[-1].data.choices[0]
    assert final.finish_reason == "tool_calls"
    parsed = [
        (c.id, c.function.name, c.function.arguments, c.index) for c in final.delta.tool_calls
    ]
    assert parsed == [
        (calls[0].id, "plus", '{"a": 1, "b": 2}', 0),
        (calls[1].id, "plus", '{"a": 3, "b": 4}', 1),
    ]
    assert events[-1].data.usage is not None


def test_default_forced_tool_call(sdk):
    response = sdk.chat.complete(model=MODEL, messages=USER, tools=TOOLS, tool_choice="required")
    call = response.choices[0].message.tool_calls[0]
    assert set(json.loads(call.function.arguments)) == {"a", "b"}


def test_json_mode(sdk):
    response = sdk.chat.complete(
        model=MODEL, messages=USER, response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(response.choices[0].message.content), dict)


def test_prefix(stub, sdk):
    stub.queue(Reply("def f():"))
    messages = [*USER, {"role": "assistant", "content": "```python\n", "prefix": True}]
    response = sdk.chat.complete(model=MODEL, messages=messages)
    assert response.choices[0].message.content == "```python\ndef f():"


def test_thinking_content(stub, sdk):
    stub.queue(Reply("3", thinking="Count the r's."))
    content = sdk.chat.complete(model=MODEL, messages=USER).choices[0].message.content
    assert [chunk.type for chunk in content] == ["thinking", "text"]
    stub.queue(Reply("3", thinking="Count the r's."))
    events = list(sdk.chat.stream(model=MODEL, messages=USER))
    assert events[-1].data.choices[0].finish_reason == "stop"


def test_n_choices_stream(stub, sdk):
    stub.queue(Reply("Aardvark"))
    events = list(sdk.chat.stream(model=MODEL, messages=USER, n=2))
    texts = {0: "", 1: ""}
    for event in events:
        choice = event.data.choices[0]
        texts[choice.index] += choice.delta.content or ""
    assert texts == {0: "Aardvark", 1: "Aardvark"}


def test_models(sdk):
    listed = sdk.models.list()
    assert MODEL in [card.id for card in listed.data]
    card = sdk.models.retrieve(model_id=MODEL)
    assert card.deprecation is not None and card.max_context_length == 131072
    assert card.capabilities.function_calling


def test_401_is_an_sdk_error(stub):
    client = Mistral(api_key="wrong", server_url=stub.root_url)
    with client, pytest.raises(errors.SDKError) as info:
        client.chat.complete(model=MODEL, messages=USER)
    assert info.value.status_code == 401
    assert "Unauthorized" in info.value.body


def test_422_is_an_http_validation_error(sdk):
    with pytest.raises(errors.HTTPValidationError) as info:
        sdk.chat.complete(model=MODEL, messages=USER, temperature=3.0)
    assert info.value.raw_response.status_code == 422
    assert json.loads(info.value.body)["message"]["detail"][0]["loc"] == ["body", "temperature"]


def test_400_on_a_stream_is_a_json_sdk_error(sdk):
    with pytest.raises(errors.SDKError) as info:
        list(sdk.chat.stream(model="mistral-huge", messages=USER))
    assert info.value.status_code == 400
    assert json.loads(info.value.body)["type"] == "invalid_model"


def test_sdk_retries_a_429(stub):
    from mistralai.client.utils import BackoffStrategy, RetryConfig

    retry = RetryConfig("backoff", BackoffStrategy(1, 10, 1.1, 1000), True)
    stub.queue(Fault(429, headers={"Retry-After": "0"}), Reply("after the wait"))
    with Mistral(api_key=stub.api_key, server_url=stub.root_url, retry_config=retry) as client:
        response = client.chat.complete(model=MODEL, messages=USER)
    assert response.choices[0].message.content == "after the wait"
    assert len(stub.chat_requests) == 2
