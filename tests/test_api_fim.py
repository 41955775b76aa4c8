"""Fill-in-the-middle (``POST /fim/completions``) through MistralClient / AsyncMistralClient, as
the chat calls go: the exact body, streamed or whole, retries, stall timeouts, scrubbed
errors, and which models have it, read from the same one ``GET /models`` as the dialect."""

from __future__ import annotations

import asyncio

import pytest

from mistral_magic.api import (
    APITimeoutError,
    AsyncMistralClient,
    InvalidRequestError,
    MistralClient,
    StreamError,
)
from mistral_magic.api.dialect import MEMORY
from mistral_magic.api.models import ModelCatalog
from mistral_magic.api.request import build_fim_body
from tests.stub import Drop, Fault, Reply


@pytest.fixture
def fim_stub(stub):
    assert "codestral-latest" in stub.models  # the stub's line-up has Codestral (FIM)
    return stub


@pytest.fixture
def client(fim_stub):
    with MistralClient(api_key=fim_stub.api_key, base_url=fim_stub.base_url, backoff=0.01) as c:
        yield c


def test_the_body_has_only_fim_fields():
    body = build_fim_body(
        "x = ", "\nprint(x)", {"max_tokens": 32, "seed": 7, "temperature": None}, model="m",
        stream=True,
    )  # fmt: skip
    assert body == {
        "model": "m",
        "prompt": "x = ",
        "suffix": "\nprint(x)",
        "max_tokens": 32,
        "random_seed": 7,
        "stream": True,
    }
    with pytest.raises(TypeError, match="tools"):
        build_fim_body("x", "", {"tools": []}, model="m", stream=False)


def test_complete_fim_posts_prompt_and_suffix_and_returns_the_middle(fim_stub, client):
    fim_stub.queue(Reply("sum(values)"))
    completion = client.complete_fim("total = ", "\nprint(total)", max_tokens=16, stop=["\n"])
    assert completion.content == "sum(values)"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    sent = fim_stub.fim_requests[-1]
    assert sent.body == {
        "model": "codestral-latest",
        "prompt": "total = ",
        "suffix": "\nprint(total)",
        "max_tokens": 16,
        "stop": ["\n"],
    }
    assert sent.headers["authorization"] == f"Bearer {fim_stub.api_key}"


def test_stream_fim_yields_deltas_then_the_whole_completion(fim_stub, client):
    fim_stub.queue(Reply(chunks=["sum(", "values)"]))
    stream = client.stream_fim("total = ", model="codestral-latest")
    assert [d.text for d in stream if d.text] == ["sum(", "values)"]
    assert stream.completion.content == "sum(values)"
    assert stream.completion.usage is not None
    assert fim_stub.fim_requests[-1].body["stream"] is True


def test_a_429_is_retried_and_a_drop_after_text_keeps_the_partial(fim_stub, client):
    fim_stub.queue(Fault(429, headers={"Retry-After": "0"}), Reply("ok"))
    assert client.complete_fim("x = ").content == "ok"
    fim_stub.queue(Drop(after_chunks=2, reply=Reply(chunks=["ab", "cd", "ef"])))
    with pytest.raises(StreamError) as caught:
        list(client.stream_fim("x = "))
    assert caught.value.partial is not None and caught.value.partial.content == "ab"


def test_a_model_without_fim_is_refused_with_the_servers_words(fim_stub, client):
    with pytest.raises(InvalidRequestError, match="FIM is not enabled for this model"):
        client.complete_fim("x = ", model="mistral-large-latest")


def test_vllm_has_no_fim_and_the_error_says_what_to_set(fim_stub):
    fim_stub.dialect = "vllm"
    with MistralClient(api_key=fim_stub.api_key, base_url=fim_stub.base_url) as client:
        client.resolve_dialect()
        with pytest.raises(InvalidRequestError) as caught:
            client.complete_fim("x = ")
    message = str(caught.value)
    assert "no fill-in-the-middle endpoint" in message and "(vLLM has none)" in message
    assert "MISTRAL_CODESTRAL_BASE_URL" in message


def test_a_stalled_fim_stream_times_out(fim_stub):
    fim_stub.token_delay = 5
    fim_stub.queue(Reply(chunks=["a", "b"]))
    with (
        MistralClient(api_key=fim_stub.api_key, base_url=fim_stub.base_url, timeout=0.5) as c,
        pytest.raises(APITimeoutError),
    ):
        list(c.stream_fim("x = "))


def test_errors_never_quote_the_key(fim_stub):
    key = fim_stub.api_key
    fim_stub.queue(Fault(400, body={"message": f"bad key {key} in request", "code": "1"}))
    with (
        MistralClient(api_key=key, base_url=fim_stub.base_url) as client,
        pytest.raises(InvalidRequestError) as caught,
    ):
        client.complete_fim("x")
    assert key not in str(caught.value)


def fim_of(catalog: ModelCatalog) -> set[str]:
    """The names the cards give FIM (ids and aliases), read from the one card source."""
    names = {n for card in catalog for n in (card.id, *card.aliases)}
    return {n for n in names if catalog.capabilities(n).completion_fim}


def test_which_models_have_fim_comes_from_the_one_model_list_request(fim_stub, client):
    catalog = client.model_catalog()
    assert catalog.capabilities("codestral-latest").completion_fim
    assert catalog.capabilities("codestral-2508").completion_fim  # the dated name
    assert not catalog.capabilities("mistral-large-latest").completion_fim
    client.resolve_dialect()
    with MistralClient(api_key=fim_stub.api_key, base_url=fim_stub.base_url) as again:
        assert "codestral-latest" in fim_of(again.model_catalog())
    asked = [r for r in fim_stub.requests if r.method == "GET" and r.path == "/v1/models"]
    assert len(asked) == 1


def test_a_forced_dialect_still_learns_the_fim_models_once(fim_stub, monkeypatch):
    monkeypatch.setenv("MISTRAL_DIALECT", "mistral")
    with MistralClient(api_key=fim_stub.api_key, base_url=fim_stub.base_url) as client:
        assert client.resolve_dialect().reason == "forced by MISTRAL_DIALECT"
        assert client.model_catalog() is MEMORY.catalog(fim_stub.base_url)
        assert "codestral-latest" in fim_of(client.model_catalog())
    asked = [r for r in fim_stub.requests if r.method == "GET" and r.path == "/v1/models"]
    assert len(asked) == 1


def test_vllm_cards_list_no_fim_models(fim_stub):
    fim_stub.dialect = "vllm"
    with MistralClient(api_key=fim_stub.api_key, base_url=fim_stub.base_url) as client:
        catalog = client.model_catalog()
        assert "codestral-latest" in {card.id for card in catalog}
        assert fim_of(catalog) == set()


def test_async_client_fim_whole_streamed_and_cancelled(fim_stub):
    async def run() -> tuple[str, str, set[str]]:
        async with AsyncMistralClient(
            api_key=fim_stub.api_key, base_url=fim_stub.base_url
        ) as client:
            fim_stub.queue(Reply("whole"))
            whole = (await client.complete_fim("x = ")).content
            fim_stub.queue(Reply(chunks=["str", "eamed"]))
            streamed = "".join([d.text async for d in client.stream_fim("x = ")])
            # Leaving a stream closes the upstream request (what typing on does).
            fim_stub.token_delay = 30
            fim_stub.queue(Reply(chunks=["a", "b", "c"]))
            deltas = client.stream_fim("x = ").__aiter__()
            await deltas.__anext__()
            await deltas.aclose()
            return whole, streamed, fim_of(await client.model_catalog())

    whole, streamed, fim = asyncio.run(run())
    assert (whole, streamed) == ("whole", "streamed")
    assert "codestral-latest" in fim
    assert fim_stub.fim_requests[-1].client_left.wait(10)
