"""The stub's ``POST /v1/fim/completions`` is as strict as La Plateforme's (protocol notes §5):
unknown fields (a ``name`` too) are 422, models without FIM get the real 400, vLLM has no such
route; answers are in the chat-completion shapes and scriptable like chat."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.stub import Drop, Fault, Reply, StubServer


@pytest.fixture
def fim_stub() -> StubServer:
    with StubServer(models=["codestral-latest"]) as stub:
        yield stub


def post(stub: StubServer, body: object, *, stream: bool = False) -> httpx.Response:
    headers = {"Authorization": f"Bearer {stub.api_key}"}
    with httpx.Client(timeout=10, verify=False) as client:
        return client.post(f"{stub.base_url}/fim/completions", json=body, headers=headers)


def test_a_fim_answer_is_a_chat_completion_with_only_the_middle(fim_stub):
    fim_stub.queue(Reply("sum(values)"))
    response = post(
        fim_stub,
        {"model": "codestral-latest", "prompt": "total = ", "suffix": "\nprint(total)"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == "codestral-latest"
    assert body["choices"][0]["message"]["content"] == "sum(values)"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] > 0
    assert fim_stub.fim_requests[-1].body["suffix"] == "\nprint(total)"


def test_a_streamed_fim_answer_uses_the_chunk_shapes_and_ends_with_done(fim_stub):
    fim_stub.queue(Reply(chunks=["sum(", "values)"]))
    body = {"model": "codestral-latest", "prompt": "total = ", "stream": True}
    response = post(fim_stub, body)
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "sum(values)"
    assert "usage" in chunks[-1]


@pytest.mark.parametrize("field", ["name", "messages", "seed", "stream_options", "n"])
def test_fields_the_fim_api_does_not_have_are_refused(fim_stub, field):
    body = {"model": "codestral-latest", "prompt": "x = ", field: "anything"}
    response = post(fim_stub, body)
    assert response.status_code == 422
    detail = response.json()["message"]["detail"]
    assert [(d["type"], d["loc"]) for d in detail] == [("extra_forbidden", ["body", field])]


def test_prompt_is_required_and_ranges_are_checked(fim_stub):
    response = post(fim_stub, {"model": "codestral-latest", "temperature": 3, "min_tokens": -1})
    assert response.status_code == 422
    found = {(d["type"], d["loc"][-1]) for d in response.json()["message"]["detail"]}
    assert found == {
        ("missing", "prompt"),
        ("less_than_equal", "temperature"),
        ("greater_than_equal", "min_tokens"),
    }


def test_a_model_without_fim_gets_the_real_refusal(fim_stub):
    response = post(fim_stub, {"model": "mistral-large-latest", "prompt": "x = "})
    assert response.status_code == 400
    body = response.json()
    assert body["message"] == "FIM is not enabled for this model"
    assert (body["type"], body["code"]) == ("invalid_request_invalid_args", "3051")
    unknown = post(fim_stub, {"model": "no-such-model", "prompt": "x = "})
    assert unknown.status_code == 400 and unknown.json()["type"] == "invalid_model"


def test_the_model_list_says_which_models_have_fim(fim_stub):
    headers = {"Authorization": f"Bearer {fim_stub.api_key}"}
    cards = httpx.get(f"{fim_stub.base_url}/models", headers=headers).json()["data"]
    fim = {c["id"] for c in cards if c["capabilities"]["completion_fim"]}
    # the line-up's Codestral, all four names (as La Plateforme lists them in 2026)
    assert fim == {
        "codestral-latest",
        "codestral-2508",
        "mistral-code-latest",
        "mistral-code-fim-latest",
    }


def test_fim_takes_any_name_of_a_listed_codestral(fim_stub):
    fim_stub.models[:] = [m for m in fim_stub.models if m != "codestral-latest"]
    fim_stub.queue(Reply("1"))
    answered = post(fim_stub, {"model": "codestral-latest", "prompt": "x = "})  # an alias
    assert answered.status_code == 200, answered.text
    codestral = ("codestral", "mistral-code")  # every name of it
    fim_stub.models[:] = [m for m in fim_stub.models if not m.startswith(codestral)]
    refused = post(fim_stub, {"model": "codestral-latest", "prompt": "x = "})
    assert (refused.status_code, refused.json()["type"]) == (400, "invalid_model")


def test_vllm_serves_no_fim_route(fim_stub):
    fim_stub.dialect = "vllm"
    response = post(fim_stub, {"model": "codestral-latest", "prompt": "x = "})
    assert (response.status_code, response.json()) == (404, {"detail": "Not Found"})


def test_stop_sequences_end_the_answer_before_them(fim_stub):
    fim_stub.queue(Reply("a + b\nprint(a)"))
    body = {"model": "codestral-latest", "prompt": "c = ", "stop": ["\n"]}
    assert post(fim_stub, body).json()["choices"][0]["message"]["content"] == "a + b"


def test_faults_and_drops_are_served_to_fim_requests_too(fim_stub):
    fim_stub.queue(Fault(429), Drop(after_chunks=1, reply=Reply("abc")))
    assert post(fim_stub, {"model": "codestral-latest", "prompt": "x"}).status_code == 429
    with pytest.raises(httpx.RemoteProtocolError):
        post(fim_stub, {"model": "codestral-latest", "prompt": "x", "stream": True})


def test_the_stub_sees_a_client_leave_a_stream(fim_stub):
    # a minute's pause after the first text; it ends when the client leaves
    fim_stub.queue(Reply(chunks=["a", "b", "c"], pause_after_first=60))
    headers = {"Authorization": f"Bearer {fim_stub.api_key}"}
    body = {"model": "codestral-latest", "prompt": "x", "stream": True}
    with (
        httpx.Client(timeout=10) as client,
        client.stream(
            "POST", f"{fim_stub.base_url}/fim/completions", json=body, headers=headers
        ) as response,
    ):
        for line in response.iter_lines():  # the first text arrived; then leave
            if '"content":"a"' in line:
                break
    assert fim_stub.fim_requests[-1].client_left.wait(10)


def test_every_documented_field_is_accepted(fim_stub):
    body = {
        "model": "codestral-latest",
        "prompt": "x = ",
        "suffix": "\n",
        "temperature": 0,
        "top_p": 1,
        "max_tokens": 8,
        "min_tokens": 0,
        "stream": False,
        "stop": "\n",
        "random_seed": 1,
        "metadata": {"k": "v"},
        "prompt_cache_key": "cell-1",
    }
    assert post(fim_stub, body).status_code == 200
