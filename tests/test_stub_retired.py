"""The stub's "retired 2407" mode: La Plateforme's answer for mistral-large-2407 since
2025-03-30, as recorded (tests/captures/error-400-invalid-model-on-stream-request.json)."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.stub import RETIRED_2407, StubServer

CAPTURE = "error-400-invalid-model-on-stream-request.json"
MESSAGES = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def retired():
    with StubServer(retired=RETIRED_2407) as stub:
        yield stub


def post(stub: StubServer, body: dict) -> httpx.Response:
    headers = {"Authorization": f"Bearer {stub.api_key}"}
    return httpx.post(f"{stub.base_url}/chat/completions", json=body, headers=headers)


@pytest.mark.parametrize("stream", [True, False])
def test_2407_is_refused_with_the_recorded_body(retired, captures_dir, stream):
    recorded = json.loads((captures_dir / CAPTURE).read_text())["response"]
    answer = post(retired, {"model": "mistral-large-2407", "messages": MESSAGES, "stream": stream})
    assert answer.status_code == recorded["status"] == 400
    assert answer.headers["content-type"] == recorded["headers"]["content-type"]
    expected = json.loads(recorded["body"])
    expected["message"] = "Invalid model: mistral-large-2407"
    assert list(answer.json().items()) == list(expected.items())  # same keys, same order


def test_2407_is_gone_from_the_model_list_but_current_models_answer(retired):
    headers = {"Authorization": f"Bearer {retired.api_key}"}
    ids = [m["id"] for m in httpx.get(f"{retired.base_url}/models", headers=headers).json()["data"]]
    assert "mistral-large-2407" not in ids and "mistral-large-latest" in ids
    card = httpx.get(f"{retired.base_url}/models/mistral-large-2407", headers=headers)
    assert card.status_code == 404
    assert post(retired, {"model": "mistral-large-latest", "messages": MESSAGES}).status_code == 200


def test_vllm_still_serves_the_open_weights_and_reset_keeps_the_mode(retired):
    retired.dialect = "vllm"
    assert post(retired, {"model": "mistral-large-2407", "messages": MESSAGES}).status_code == 200
    retired.reset()
    assert retired.retired == frozenset(RETIRED_2407)
    assert post(retired, {"model": "mistral-large-2407", "messages": MESSAGES}).status_code == 400


def test_by_default_the_stub_serves_2407_the_listed_deviation(stub):
    assert post(stub, {"model": "mistral-large-2407", "messages": MESSAGES}).status_code == 200
