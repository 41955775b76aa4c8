"""The stub's model line-up in both dialects (cards as La Plateforme's 2026 list and vLLM give
them), and what it refuses a model that cannot do it: images without vision,
``reasoning_effort`` without reasoning."""

from __future__ import annotations

import json

import pytest

from tests.stub import Reply

PNG = (  # a 1x1 PNG
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QD"
    "wADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def ask(model: str, **extra):
    return {"model": model, "messages": [{"role": "user", "content": "Hi"}], **extra}


def with_image(model: str) -> dict:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": PNG}},
    ]
    return {"model": model, "messages": [{"role": "user", "content": content}]}


def cards(stub_http) -> dict[str, dict]:
    return {card["id"]: card for card in stub_http.get("/models").json()["data"]}


def test_la_plateforme_cards_offer_the_line_up(stub_http, captures_dir):
    listed = cards(stub_http)
    retired = listed["mistral-large-2407"]
    assert retired["deprecation"].startswith("2024-11-30")
    assert retired["deprecation_replacement_model"] == "mistral-large-latest"
    large = listed["mistral-large-latest"]
    assert large["max_context_length"] == 262144 and large["capabilities"]["vision"]
    assert large["aliases"] == ["mistral-large-2512"] and large["name"] == "mistral-large-2512"
    assert listed["pixtral-12b-2409"]["capabilities"]["vision"]
    assert set(listed["pixtral-12b-2409"]["aliases"]) == {"pixtral-12b", "pixtral-12b-latest"}
    small = listed["mistral-small-latest"]["capabilities"]
    assert small["reasoning"] and small["vision"]
    assert listed["magistral-medium-latest"]["capabilities"]["reasoning"]
    codestral = listed["codestral-latest"]
    assert codestral["capabilities"]["completion_fim"] and not codestral["capabilities"]["vision"]
    assert codestral["max_context_length"] == 256000
    assert not listed["mistral-large-2407"]["capabilities"]["vision"]
    # the same fields, in the same order, as the recorded 2026 list
    recorded = json.loads(
        json.loads((captures_dir / "models-list-2026-capabilities.json").read_text())["response"][
            "body"
        ]
    )["data"][0]
    assert set(large) == set(recorded)
    assert set(large["capabilities"]) == set(recorded["capabilities"])


def test_codestral_cards_are_the_recorded_ones(stub_http, captures_dir):
    """Codestral's four names, each with its card listing the other three, as La Plateforme
    lists them (the 2026 capture; its recorder wrote 0 for ``created``)."""
    recorded = json.loads(
        json.loads((captures_dir / "models-list-2026-capabilities.json").read_text())["response"][
            "body"
        ]
    )["data"]
    names = ("codestral-2508", "codestral-latest", "mistral-code-latest", "mistral-code-fim-latest")
    listed = cards(stub_http)
    for real in (card for card in recorded if card["id"] in names):
        ours = listed[real["id"]]
        assert {**ours, "created": 0} == real
        assert list(ours) != [] and set(ours) == set(real)


def test_vllm_cards_carry_the_window_and_nothing_else(stub, stub_http):
    stub.dialect = "vllm"
    listed = cards(stub_http)
    assert set(listed) == set(stub.models)
    for card in listed.values():
        assert card["owned_by"] == "vllm" and "capabilities" not in card
        assert "aliases" not in card and "deprecation" not in card
    assert listed["mistral-large-latest"]["max_model_len"] == 262144
    assert listed["pixtral-12b-2409"]["root"] == "mistralai/Pixtral-12B-2409"


def test_aliases_are_served_on_la_plateforme_only(stub, stub_http):
    assert (
        stub_http.post("/chat/completions", json=ask("magistral-small-latest")).status_code == 200
    )
    stub.dialect = "vllm"
    refused = stub_http.post("/chat/completions", json=ask("magistral-small-latest"))
    assert refused.status_code == 404


@pytest.mark.parametrize("dialect", ["mistral", "vllm"])
def test_images_go_to_vision_models_only(stub, stub_http, dialect):
    stub.dialect = dialect
    assert (
        stub_http.post("/chat/completions", json=with_image("pixtral-12b-2409")).status_code == 200
    )
    refused = stub_http.post("/chat/completions", json=with_image("mistral-large-2407"))
    assert refused.status_code == 400
    if dialect == "vllm":
        assert refused.json() == {
            "error": {
                "message": "mistral-large-2407 is not a multimodal model",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            }
        }
    else:
        body = refused.json()
        assert (body["object"], body["type"], body["code"]) == (
            "error",
            "invalid_request_invalid_args",
            "3051",
        )
        assert "mistral-large-2407" in body["message"] and "image" in body["message"]


def test_reasoning_effort_goes_to_reasoning_models_only(stub, stub_http):
    stub.queue(Reply("144", thinking="12 times 12."))
    sent = ask("mistral-small-latest", reasoning_effort="high")
    answer = stub_http.post("/chat/completions", json=sent)
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"][0]["type"] == "thinking"
    refused = stub_http.post(
        "/chat/completions", json=ask("mistral-large-2407", reasoning_effort="high")
    )
    assert refused.status_code == 400
    assert refused.json()["message"] == "Reasoning effort is not enabled for this model"
    # vLLM ignores request fields a model does not use
    stub.dialect = "vllm"
    sent = ask("mistral-large-2407", reasoning_effort="high")
    assert stub_http.post("/chat/completions", json=sent).status_code == 200


def test_the_window_is_each_models_own(stub_http):
    words = "word " * 140000  # about 140k tokens: over 2407's window, under Large 3's
    long = {"role": "user", "content": words}
    over = stub_http.post(
        "/chat/completions", json={"model": "mistral-large-2407", "messages": [long]}
    )
    assert over.status_code == 400 and "131072 maximum context length" in over.json()["message"]
    fits = stub_http.post(
        "/chat/completions",
        json={"model": "mistral-large-latest", "messages": [long], "max_tokens": 5},
    )
    assert fits.status_code == 200


@pytest.mark.parametrize("dialect", ["mistral", "vllm"])
def test_tools_go_to_models_with_function_calling_only(stub, stub_http, dialect):
    stub.dialect = dialect
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    assert stub_http.post(
        "/chat/completions", json=ask("mistral-large-2407", tools=[tool])
    ).is_success
    refused = stub_http.post("/chat/completions", json=ask("open-mistral-7b", tools=[tool]))
    assert refused.status_code == 400
    if dialect == "vllm":
        assert "--enable-auto-tool-choice" in refused.json()["error"]["message"]
    else:
        assert refused.json()["message"] == "Function calling is not enabled for this model"
    assert not cards(stub_http)["open-mistral-7b"].get("capabilities", {}).get("function_calling")


@pytest.mark.parametrize("dialect", ["mistral", "vllm"])
def test_a_window_of_the_stubs_own(stub, stub_http, dialect):
    """As a vLLM started with --max-model-len 6000 (or a card that says 6000)."""
    stub.dialect = dialect
    stub.context_windows = {"mistral-large-2407": 6000}
    card = cards(stub_http)["mistral-large-2407"]
    assert card.get("max_context_length", card.get("max_model_len")) == 6000
    long = {"role": "user", "content": "word " * 5000}
    over = stub_http.post(
        "/chat/completions",
        json={"model": "mistral-large-2407", "messages": [long], "max_tokens": 2048},
    )
    assert over.status_code == 400
    stub.reset()
    assert cards(stub_http)["mistral-large-2407"].get("max_context_length", 131072) == 131072
