"""La Plateforme's request validation as the stub enforces it: 401, 422 and 400 bodies."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.stub import Reply

MODEL = "mistral-large-2407"
USER = [{"role": "user", "content": "Hi"}]
CALL = {"id": "D681PevKs", "type": "function", "function": {"name": "plus", "arguments": "{}"}}
TOOL = {"type": "function", "function": {"name": "plus", "parameters": {"type": "object"}}}


def body(**fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": USER, **fields}


def detail(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    data = response.json()
    assert list(data) == ["object", "message", "type", "param", "code"]
    assert data["object"] == "error" and data["type"] == "invalid_request_error"
    assert data["param"] is None and data["code"] is None
    return data["message"]["detail"]


def bad_request(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    data = response.json()
    assert list(data) == ["object", "message", "type", "param", "code", "raw_status_code"]
    assert data["object"] == "error" and data["raw_status_code"] == 400
    return data


# ------------------------------------------------------------------------------ auth


@pytest.mark.parametrize(
    "header", [None, "Bearer wrong", "test-key", "Bearer test-key2", "bearer test-key"]
)
def test_missing_or_wrong_key_is_a_gateway_401(stub, header):
    headers = {"Authorization": header} if header else {}
    response = httpx.post(f"{stub.base_url}/chat/completions", json=body(), headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert re.fullmatch(
        r'\{\n  "message":"Unauthorized",\n  "request_id":"[0-9a-f]{32}"\n\}', response.text
    )
    assert stub.chat_requests[-1].headers.get("authorization") == header


def test_auth_is_checked_on_every_route(stub):
    assert httpx.get(f"{stub.base_url}/models").status_code == 401


# ------------------------------------------------------------------------------- 422


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seed", 42),
        ("max_completion_tokens", 32000),
        ("stream_options", {"include_usage": True}),
        ("safe_mode", True),
        ("user", "me"),
    ],
)
def test_unknown_top_level_fields_are_extra_forbidden(stub_http, field, value):
    errors = detail(stub_http.post("/chat/completions", json=body(**{field: value})))
    assert errors == [
        {
            "type": "extra_forbidden",
            "loc": ["body", field],
            "msg": "Extra inputs are not permitted",
            "input": value,
        }
    ]


def test_unknown_message_fields_carry_index_and_role_in_loc(stub_http):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi", "name": "ann"},
        {"role": "assistant", "content": "Hello", "reasoning_content": "hm"},
        {"role": "user", "content": [{"type": "text", "text": "x", "cache_control": {}}]},
    ]
    errors = detail(stub_http.post("/chat/completions", json=body(messages=messages)))
    locs = [e["loc"] for e in errors]
    assert ["body", "messages", 1, "user", "name"] in locs
    assert ["body", "messages", 2, "assistant", "reasoning_content"] in locs
    chunk_loc = [loc for loc in locs if loc[-1] == "cache_control"]
    assert chunk_loc and chunk_loc[0][:5] == ["body", "messages", 3, "user", "content"]
    assert {e["type"] for e in errors} == {"extra_forbidden", "string_type"}


def test_name_is_accepted_on_tool_messages_only(stub_http):
    messages = [
        *USER,
        {"role": "assistant", "content": "", "tool_calls": [CALL]},
        {"role": "tool", "content": "3", "tool_call_id": "D681PevKs", "name": "plus"},
    ]
    response = stub_http.post("/chat/completions", json=body(messages=messages, tools=[TOOL]))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"temperature": 1.6}, ("less_than_equal", ["body", "temperature"])),
        ({"temperature": -0.1}, ("greater_than_equal", ["body", "temperature"])),
        ({"top_p": 1.01}, ("less_than_equal", ["body", "top_p"])),
        ({"top_p": -1}, ("greater_than_equal", ["body", "top_p"])),
        ({"max_tokens": -1}, ("greater_than_equal", ["body", "max_tokens"])),
        ({"n": 0}, ("greater_than_equal", ["body", "n"])),
        ({"presence_penalty": 3}, ("less_than_equal", ["body", "presence_penalty"])),
        ({"temperature": "hot"}, ("float_parsing", ["body", "temperature"])),
        ({"max_tokens": 1.5}, ("int_from_float", ["body", "max_tokens"])),
        ({"max_tokens": [1]}, ("int_type", ["body", "max_tokens"])),
        ({"stream": "maybe"}, ("bool_parsing", ["body", "stream"])),
        ({"stream": {}}, ("bool_type", ["body", "stream"])),
        ({"model": 7}, ("string_type", ["body", "model"])),
        ({"messages": "Hi"}, ("list_type", ["body", "messages"])),
        ({"tool_choice": "sometimes"}, ("enum", ["body", "tool_choice"])),
        ({"response_format": {"type": "yaml"}},
         ("literal_error", ["body", "response_format", "type"])),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]},
         ("missing", ["body", "tools", 0, "function", "parameters"])),
        ({"messages": [{"content": "Hi"}]}, ("union_tag_not_found", ["body", "messages", 0])),
        ({"messages": [{"role": "developer", "content": "Hi"}]},
         ("union_tag_invalid", ["body", "messages", 0])),
        ({"messages": [{"role": "user"}]}, ("missing", ["body", "messages", 0, "user", "content"])),
    ],
)  # fmt: skip
def test_wrong_values_are_422_with_pydantic_types(stub_http, fields, expected):
    errors = detail(stub_http.post("/chat/completions", json=body(**fields)))
    assert (errors[0]["type"], errors[0]["loc"]) == expected
    assert errors[0]["msg"].startswith(("Input should", "Field required", "Unable", "Input tag"))


def test_range_error_carries_ctx_and_the_input_as_sent(stub_http):
    errors = detail(stub_http.post("/chat/completions", json=body(temperature=2)))
    assert errors == [
        {
            "type": "less_than_equal",
            "loc": ["body", "temperature"],
            "msg": "Input should be less than or equal to 1.5",
            "input": 2,
            "ctx": {"le": 1.5},
        }
    ]


@pytest.mark.parametrize("missing", ["model", "messages"])
def test_required_fields(stub_http, missing):
    sent = body()
    del sent[missing]
    errors = detail(stub_http.post("/chat/completions", json=sent))
    assert errors == [
        {"type": "missing", "loc": ["body", missing], "msg": "Field required", "input": sent}
    ]


def test_not_json_is_a_422_json_invalid(stub_http):
    errors = detail(stub_http.post("/chat/completions", content=b"{nope"))
    assert errors[0]["type"] == "json_invalid" and errors[0]["loc"][0] == "body"


def test_every_documented_field_is_accepted(stub_http):
    everything = body(
        messages=[
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": [{"type": "text", "text": "Add 1 and 2."}]},
            {"role": "assistant", "content": None, "tool_calls": [{**CALL, "index": 0}]},
            {"role": "tool", "content": "3", "tool_call_id": "D681PevKs", "name": "plus"},
            {"role": "assistant", "content": "It is", "prefix": True},
        ],
        temperature=1.5,
        top_p=1,
        max_tokens=64,
        min_tokens=0,
        stream=False,
        stop=["\n\n", "END"],
        random_seed=7,
        metadata={"cell": "3"},
        response_format={"type": "text"},
        tools=[{**TOOL, "function": {**TOOL["function"], "description": "Add.", "strict": False}}],
        tool_choice={"type": "function", "function": {"name": "plus"}},
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        n=1,
        prediction={"type": "content", "content": ""},
        parallel_tool_calls=False,
        prompt_mode=None,
        safe_prompt=False,
        logprobs=False,
        top_k=None,
        prompt_cache_key="k",
        service_tier="auto",
    )
    response = stub_http.post("/chat/completions", json=everything)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"].startswith("It is")


@pytest.mark.parametrize(
    "tool_choice", ["auto", "none", "any", "required", {"function": {"name": "plus"}}]
)
def test_tool_choice_forms(stub_http, tool_choice):
    response = stub_http.post("/chat/completions", json=body(tools=[TOOL], tool_choice=tool_choice))
    assert response.status_code == 200, response.text


def test_a_failed_validation_does_not_consume_the_queued_reply(stub, stub_http):
    stub.queue(Reply("kept"))
    assert stub_http.post("/chat/completions", json=body(seed=1)).status_code == 422
    assert stub.queued
    data = stub_http.post("/chat/completions", json=body()).json()
    assert data["choices"][0]["message"]["content"] == "kept"


# ------------------------------------------------------------------------------- 400


@pytest.mark.parametrize("stream", [False, True])
def test_unknown_model_is_a_plain_json_400(stub_http, stream):
    response = stub_http.post("/chat/completions", json=body(model="mistral-huge", stream=stream))
    assert bad_request(response) == {
        "object": "error",
        "message": "Invalid model: mistral-huge",
        "type": "invalid_model",
        "param": None,
        "code": "1500",
        "raw_status_code": 400,
    }


def test_extra_models_can_be_declared(stub, stub_http):
    stub.models.append("my-finetune")
    assert stub_http.post("/chat/completions", json=body(model="my-finetune")).status_code == 200


ORDER_CASES = [
    (
        [*USER, {"role": "assistant", "content": "", "tool_calls": [CALL]},
         {"role": "tool", "content": "3", "tool_call_id": "D681PevKs"},
         {"role": "user", "content": "Thanks"}],
        "Unexpected role 'user' after role 'tool'",
    ),
    (
        [*USER, {"role": "assistant", "content": "Hello"}],
        "Expected last role User or Tool (or Assistant with prefix True) for serving but got "
        "assistant",
    ),
    (
        [{"role": "assistant", "content": "Hello"}],
        "Conversation must start with a user message or system message",
    ),
    (
        [*USER,
         {"role": "assistant", "content": "", "tool_calls": [CALL, {**CALL, "id": "abcdefghi"}]},
         {"role": "tool", "content": "3", "tool_call_id": "D681PevKs"}],
        "Not the same number of function calls and responses",
    ),
    (
        [*USER, {"role": "assistant", "content": "Hi", "prefix": True}, *USER],
        "Assistant message with prefix True must be last message",
    ),
    (
        [*USER, {"role": "assistant", "content": "Both", "tool_calls": [CALL]},
         {"role": "tool", "content": "3", "tool_call_id": "D681PevKs"}],
        "Assistant message must have either content or tool_calls, but not both.",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("messages", "message"), ORDER_CASES)
def test_conversation_order_errors(stub_http, messages, message):
    data = bad_request(stub_http.post("/chat/completions", json=body(messages=messages)))
    assert data["message"] == message
    assert (data["type"], data["code"]) == ("invalid_request_message_order", "3230")


@pytest.mark.parametrize("bad_id", ["call_abc123", "null", "12345678", "abc-def-g"])
def test_tool_call_ids_must_be_nine_alphanumerics(stub_http, bad_id):
    messages = [
        *USER,
        {"role": "assistant", "content": "", "tool_calls": [{**CALL, "id": bad_id}]},
        {"role": "tool", "content": "3", "tool_call_id": bad_id},
    ]
    data = bad_request(stub_http.post("/chat/completions", json=body(messages=messages)))
    assert data["message"] == (
        f"Tool call id was {bad_id} but must be a-z, A-Z, 0-9, with a length of 9."
    )
    assert (data["type"], data["code"]) == ("invalid_function_call", "3280")


@pytest.mark.parametrize("name", ["has space", "x" * 65, "dotted.name", ""])
def test_function_names_must_match_the_regex(stub_http, name):
    tool = {"type": "function", "function": {"name": name, "parameters": {}}}
    data = bad_request(stub_http.post("/chat/completions", json=body(tools=[tool])))
    assert data["message"].startswith(f"Function name was {name} but must be a-z, A-Z, 0-9")


def test_logprobs_are_refused_as_in_the_capture(stub_http):
    data = bad_request(stub_http.post("/chat/completions", json=body(logprobs=True)))
    assert data["message"] == "Logprobs are not enabled for this model"
    assert (data["type"], data["code"]) == ("invalid_request_invalid_args", "3051")


def test_prompt_plus_max_tokens_must_fit_the_context(stub_http):
    assert stub_http.post("/chat/completions", json=body(max_tokens=131068)).status_code == 200
    data = bad_request(stub_http.post("/chat/completions", json=body(max_tokens=131069)))
    assert data["message"] == (
        "Prompt contains 4 tokens and 0 draft tokens, too large for model with 131072 maximum "
        "context length"
    )
    assert (data["type"], data["code"]) == ("invalid_request_invalid_args", "3051")


# --------------------------------------------------------------------- other routes


def test_models_list_and_card(stub_http):
    data = stub_http.get("/models").json()
    assert data["object"] == "list"
    cards = {card["id"]: card for card in data["data"]}
    assert {"mistral-large-2407", "mistral-large-latest"} <= set(cards)
    card = stub_http.get("/models/mistral-large-2407").json()
    assert card == cards["mistral-large-2407"]
    assert card["deprecation"] and card["max_context_length"] == 131072
    assert card["capabilities"]["function_calling"] and not card["capabilities"]["vision"]
    missing = stub_http.get("/models/nope")
    assert missing.status_code == 404 and missing.json()["type"] == "invalid_model"


def test_unknown_route_and_wrong_method(stub, stub_http):
    response = httpx.get(f"{stub.base_url}/embeddingz")  # Kong answers before auth
    assert response.status_code == 404
    assert response.json()["message"] == "no Route matched with those values"
    assert stub_http.get("/chat/completions").status_code == 405
