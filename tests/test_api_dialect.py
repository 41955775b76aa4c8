"""The wire dialect comes from what the server is (GET /models), once per base URL, with its
reason; MISTRAL_DIALECT and the dialect setting still force it; hints never recommend the
dialect already in use."""

from __future__ import annotations

import asyncio

import pytest

from mistral_magic.api import (
    AsyncMistralClient,
    InvalidRequestError,
    MistralClient,
    ModelNotFoundError,
    SettingsError,
)
from mistral_magic.api.dialect import MEMORY, from_model_list
from tests.stub import Reply, Response, ToolCallSpec

USER = [{"role": "user", "content": "Say hello"}]


@pytest.fixture(autouse=True)
def no_dialect_in_the_environment(monkeypatch):
    monkeypatch.delenv("MISTRAL_DIALECT", raising=False)


def model_list_requests(stub) -> int:
    return sum(1 for r in stub.requests if r.method == "GET" and r.path == "/v1/models")


@pytest.mark.parametrize(
    "stub_dialect, expected, reason",
    [
        ("mistral", "mistral", "from /models: cards carry capabilities (La Plateforme)"),
        ("vllm", "openai", "from /models: owned_by vllm"),
    ],
)
def test_the_dialect_comes_from_the_servers_model_list(stub, stub_dialect, expected, reason):
    stub.dialect = stub_dialect
    with MistralClient(api_key=stub.api_key, base_url=stub.base_url) as client:
        choice = client.resolve_dialect()
        assert (choice.dialect, choice.reason) == (expected, reason)
        # the request that follows speaks it: no 422 for stream_options on La Plateforme's
        # dialect, usage in the stream on vLLM's
        stream = client.stream(USER)
        assert "".join(d.text for d in stream)
        assert stream.completion.usage is not None
    # asked once per base URL, remembered for the process (a new client does not ask again)
    with MistralClient(api_key=stub.api_key, base_url=stub.base_url) as again:
        assert again.resolve_dialect() == choice
        again.complete(USER)
    assert model_list_requests(stub) == 1


def test_async_client_asks_the_same_way(stub):
    stub.dialect = "vllm"

    async def run() -> tuple[str, str]:
        async with AsyncMistralClient(api_key=stub.api_key, base_url=stub.base_url) as client:
            choice = await client.resolve_dialect()
            text = "".join([d.text async for d in client.stream(USER)])
            return choice.dialect, text

    dialect, text = asyncio.run(run())
    assert dialect == "openai" and text
    assert stub.chat_requests[-1].body["stream_options"] == {"include_usage": True}


def test_forcing_wins_and_says_so(stub, monkeypatch):
    stub.dialect = "vllm"
    monkeypatch.setenv("MISTRAL_DIALECT", "mistral")
    with MistralClient(api_key=stub.api_key, base_url=stub.base_url) as client:
        assert str(client.resolve_dialect()) == "mistral (forced by MISTRAL_DIALECT)"
    with MistralClient(api_key=stub.api_key, base_url=stub.base_url, dialect="openai") as c:
        assert str(c.resolve_dialect()) == "openai (forced by the dialect setting)"
    # an explicit "auto" setting asks the server even when the environment forces one
    with MistralClient(api_key=stub.api_key, base_url=stub.base_url, dialect="auto") as c:
        assert c.resolve_dialect().reason == "from /models: owned_by vllm"
    assert model_list_requests(stub) == 1


def test_la_plateforme_is_known_by_its_host_without_asking():
    client = MistralClient(api_key="x", base_url="https://api.mistral.ai/v1")
    assert str(client.resolve_dialect()) == "mistral (api.mistral.ai is La Plateforme)"


def test_without_a_model_list_the_fallback_is_said_and_remembered(stub):
    stub.route("GET", "/v1/models", lambda *_: Response(404, {"detail": "Not Found"}))
    with MistralClient(api_key=stub.api_key, base_url=stub.base_url) as client:
        choice = client.resolve_dialect()
        assert str(choice) == "mistral (fallback: GET /models answered HTTP 404)"
        assert client.complete(USER).content
        assert client.resolve_dialect() == choice
    assert model_list_requests(stub) == 1


def test_a_server_that_cannot_be_asked_is_asked_again_later(stub, monkeypatch):
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    with MistralClient(base_url=stub.base_url) as client:  # no key: /models answers 401
        assert client.resolve_dialect().reason == "fallback: GET /models answered HTTP 401"
    assert MEMORY.get(stub.base_url) is None
    with MistralClient(api_key=stub.api_key, base_url=stub.base_url) as client:
        assert client.resolve_dialect().reason.startswith("from /models")
    assert model_list_requests(stub) == 2


def test_unknown_dialect_names_are_refused_with_the_reason(monkeypatch):
    with pytest.raises(SettingsError, match=r"'mistral'.*'openai'.*'auto'"):
        MistralClient(api_key="x", base_url="http://h/v1", dialect="klingon")
    monkeypatch.setenv("MISTRAL_DIALECT", "klingon")
    with pytest.raises(SettingsError, match="Unknown dialect 'klingon'"):
        MistralClient(api_key="x", base_url="http://h/v1").resolve_dialect()


def test_model_cards_of_other_openai_compatible_servers():
    ollama = {
        "object": "list",
        "data": [{"id": "llama3", "object": "model", "owned_by": "library"}],
    }
    assert from_model_list(ollama).dialect == "openai"
    assert from_model_list({"data": [{"id": "m", "max_model_len": 4096}]}).dialect == "openai"
    assert from_model_list({"data": []}) is None and from_model_list("nonsense") is None


def test_a_422_hint_recommends_the_other_dialect_never_the_one_in_use(stub):
    """The bug of the first hour: a local La Plateforme-style server, the OpenAI dialect
    forced, and a hint that recommended MISTRAL_DIALECT=openai, the setting in use."""
    client = MistralClient(api_key=stub.api_key, base_url=stub.base_url, dialect="openai")
    with client, pytest.raises(InvalidRequestError) as info:
        list(client.stream(USER))
    message = str(info.value)
    assert "stream_options" in message and "MISTRAL_DIALECT=mistral" in message
    assert "MISTRAL_DIALECT=openai" not in message
    # and the other way round: La Plateforme's tool_choice "any" sent to vLLM
    stub.dialect = "vllm"
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    stub.queue(Reply(tool_calls=[ToolCallSpec("f", {})]))
    client = MistralClient(api_key=stub.api_key, base_url=stub.base_url, dialect="mistral")
    with client, pytest.raises(InvalidRequestError) as info:
        client.complete(USER, tools=[tool], tool_choice="any")
    message = str(info.value)
    assert "MISTRAL_DIALECT=openai" in message and "MISTRAL_DIALECT=mistral" not in message


def test_an_unknown_model_on_vllm_is_not_called_retired_nor_a_missing_endpoint(stub):
    stub.dialect = "vllm"
    stub.models = ["Mistral-Large-Instruct-2407"]  # served under another name
    with (
        MistralClient(
            api_key=stub.api_key, base_url=stub.base_url, model="mistral-large-2407"
        ) as c,
        pytest.raises(ModelNotFoundError) as info,
    ):
        c.complete(USER)
    message = str(info.value)
    assert "--served-model-name" in message and "GET /models" in message
    assert "retired" not in message and "no such endpoint" not in message
