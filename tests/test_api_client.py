"""MistralClient / AsyncMistralClient against the stub server, over real sockets."""

from __future__ import annotations

import asyncio
import socket

import pytest

from mistral_magic.api import (
    APIConnectionError,
    APITimeoutError,
    AsyncMistralClient,
    AuthenticationError,
    InvalidRequestError,
    MissingAPIKeyError,
    MistralClient,
    ModelNotFoundError,
    RateLimitError,
    ServerError,
    StreamError,
)
from tests.stub import Drop, Fault, Reply, ToolCallSpec

USER = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def client(stub):
    with MistralClient(
        api_key=stub.api_key,
        base_url=stub.base_url,
        model="mistral-large-2407",
        dialect="mistral",
        backoff=0.01,
    ) as c:
        yield c


def test_complete_returns_text_usage_and_echoed_model(stub, client):
    stub.queue(Reply(text="Hello there!"))
    done = client.complete(USER)
    assert done.content == "Hello there!"
    assert done.finish_reason == "stop"
    assert done.model == "mistral-large-2407"
    assert len(done.id) == 32
    assert done.usage.prompt_tokens > 0 and done.usage.total_tokens == (
        done.usage.prompt_tokens + done.usage.completion_tokens
    )
    sent = stub.last_request
    assert sent.headers["authorization"] == f"Bearer {stub.api_key}"
    assert sent.headers["accept"] == "application/json"
    assert sent.body == {"model": "mistral-large-2407", "messages": USER}


def test_stream_yields_deltas_then_the_whole_completion(stub, client):
    stub.queue(Reply(text="one two three four"))
    stream = client.stream(USER, temperature=0.2)
    pieces = [d.text for d in stream]
    assert len([p for p in pieces if p]) > 1
    assert "".join(pieces) == "one two three four" == stream.completion.content
    assert stream.completion.usage.completion_tokens > 0
    assert stub.last_request.headers["accept"] == "text/event-stream"
    assert stub.last_request.body["stream"] is True
    assert stub.last_request.body["temperature"] == 0.2


def test_unset_parameters_are_omitted_and_every_known_one_is_accepted(stub, client):
    client.complete(USER, temperature=None, max_tokens=None)
    assert set(stub.last_request.body) == {"model", "messages"}
    params = dict(
        temperature=0.3,
        top_p=0.9,
        max_tokens=50,
        stop=["\n\n"],
        random_seed=7,
        response_format={"type": "json_object"},
        presence_penalty=0.1,
        frequency_penalty=0.1,
        n=1,
        safe_prompt=False,
        tools=[
            {
                "type": "function",
                "function": {"name": "f", "parameters": {"type": "object", "properties": {}}},
            }
        ],
        tool_choice="auto",
    )
    client.complete(USER, **params)
    assert stub.last_request.body == {"model": "mistral-large-2407", "messages": USER, **params}


def test_seed_alias_and_named_tool_choice(stub, client):
    tool = {
        "type": "function",
        "function": {"name": "f", "parameters": {"type": "object", "properties": {}}},
    }
    stub.queue(Reply(tool_calls=[ToolCallSpec("f", {})]))
    client.complete(USER, seed=3, tools=[tool], tool_choice="f")
    body = stub.last_request.body
    assert body["random_seed"] == 3 and "seed" not in body
    assert body["tool_choice"] == {"type": "function", "function": {"name": "f"}}


def test_unknown_parameter_is_refused_before_sending(stub, client):
    with pytest.raises(TypeError, match="max_completion_tokens"):
        client.complete(USER, max_completion_tokens=5)
    assert stub.requests == []


def test_prefix_assistant_message(stub, client):
    messages = [*USER, {"role": "assistant", "content": "Bonjour", "prefix": True}]
    done = client.complete(messages)
    assert done.content.startswith("Bonjour")


def test_tool_calls_parsed_from_complete_and_stream(stub, client):
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    stub.queue(Reply(tool_calls=[ToolCallSpec("get_weather", {"city": "Paris"})]))
    done = client.complete(USER, tools=[tool])
    (call,) = done.tool_calls
    assert (call.name, call.arguments, done.finish_reason) == (
        "get_weather",
        {"city": "Paris"},
        "tool_calls",
    )
    assert len(call.id) == 9 and call.id.isalnum()
    stub.queue(
        Reply(
            tool_calls=[
                ToolCallSpec("get_weather", {"city": "Oslo"}),
                ToolCallSpec("get_weather", {"city": "Rome"}),
            ]
        )
    )
    stream = client.stream(USER, tools=[tool])
    list(stream)
    assert [c.arguments["city"] for c in stream.completion.tool_calls] == ["Oslo", "Rome"]
    # the history we send back is accepted by the stub's strict order/id validation
    history = [*USER, stream.completion.to_message()]
    history += [
        {"role": "tool", "tool_call_id": c.id, "name": c.name, "content": "sunny"}
        for c in stream.completion.tool_calls
    ]
    assert client.complete(history, tools=[tool]).content


def test_429_with_retry_after_is_honoured_then_succeeds(stub, client):
    stub.queue(Fault(429, headers={"Retry-After": "0.3"}), Reply(text="ok"))
    assert client.complete(USER).content == "ok"
    first, second = stub.chat_requests
    assert second.received_at - first.answered_at >= 0.3  # a lower bound: load only adds


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried(stub, client, status):
    stub.queue(Fault(status, times=2), Reply(text="recovered"))
    assert client.complete(USER).content == "recovered"
    assert len(stub.chat_requests) == 3


def test_retries_are_bounded_and_the_last_error_explains(stub, client):
    stub.queue(Fault(429, headers={"Retry-After": "0"}, times=10))
    with pytest.raises(RateLimitError) as info:
        client.complete(USER)
    assert len(stub.chat_requests) == 4  # one try + max_retries=3
    assert info.value.retry_after == 0
    assert "429" in str(info.value)
    stub.reset()
    stub.queue(Fault(503, times=10))
    with pytest.raises(ServerError):
        list(client.stream(USER))
    assert len(stub.chat_requests) == 4


def test_retry_after_longer_than_the_time_budget_is_not_waited_for(stub):
    notices: list = []
    with MistralClient(
        api_key=stub.api_key, base_url=stub.base_url, dialect="mistral", retry_total_time=1
    ) as c:
        stub.queue(Fault(429, headers={"Retry-After": "30"}))
        with pytest.raises(RateLimitError) as info:
            c.complete(USER, on_notice=notices.append)
        assert info.value.retry_after == 30
        assert notices == [] and len(stub.chat_requests) == 1  # gave up without waiting


@pytest.mark.parametrize("status", [400, 401, 422])
def test_client_errors_are_not_retried(stub, client, status):
    stub.queue(Fault(status))
    with pytest.raises((InvalidRequestError, AuthenticationError)):
        client.complete(USER)
    assert len(stub.chat_requests) == 1


def test_wrong_key_is_an_authentication_error_without_the_key(stub):
    secret = "sk-wrong-key-that-must-never-show-1234"
    with MistralClient(api_key=secret, base_url=stub.base_url, dialect="mistral") as c:
        with pytest.raises(AuthenticationError) as info:
            c.complete(USER)
        assert secret not in str(info.value) and secret not in repr(info.value)
        assert secret not in repr(c)
        assert "MISTRAL_API_KEY" in str(info.value)


def test_strict_validation_errors_are_explained(stub, client):
    with pytest.raises(InvalidRequestError, match="name"):
        client.complete([{"role": "user", "content": "hi", "name": "bob"}])
    with pytest.raises(ModelNotFoundError) as info:
        client.complete(USER, model="mistral-large-9999")
    # the api says what to do in its own terms; faces add their commands
    assert "GET /models" in str(info.value) and "%mistral" not in str(info.value)


def test_retired_2407_gets_a_hint_when_the_server_does_not_know_it(stub, client):
    stub.queue(
        Fault(
            400,
            body={
                "object": "error",
                "message": "Invalid model: mistral-large-2407",
                "type": "invalid_model",
                "param": None,
                "code": "1500",
            },
        )
    )
    with pytest.raises(ModelNotFoundError, match="retired"):
        client.complete(USER)


def test_stream_dropped_after_text_keeps_the_partial_and_does_not_retry(stub, client):
    stub.queue(
        Drop(after_chunks=3, reply=Reply(text="alpha beta gamma delta epsilon zeta")),
        Reply(text="never"),
    )
    stream = client.stream(USER)
    seen = []
    with pytest.raises(StreamError) as info:
        for delta in stream:
            seen.append(delta.text)
    partial = info.value.partial
    assert partial.content == "".join(seen) and partial.content
    assert "alpha beta gamma delta epsilon zeta".startswith(partial.content)
    assert stream.completion.content == partial.content
    assert len(stub.chat_requests) == 1


def test_stream_dropped_before_any_text_is_retried(stub, client):
    stub.queue(Drop(after_chunks=1), Reply(text="second try"))
    stream = client.stream(USER)
    assert "".join(d.text for d in stream) == "second try"
    assert len(stub.chat_requests) == 2


def test_unreachable_server_is_a_connection_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with (
        MistralClient(
            api_key="k" * 32,
            base_url=f"http://127.0.0.1:{port}/v1",
            dialect="mistral",
            max_retries=1,
            backoff=0.01,
        ) as c,
        pytest.raises(APIConnectionError, match="Could not reach"),
    ):
        c.complete(USER)


def test_slow_server_is_a_timeout_not_retried(stub):
    stub.latency = 1.0
    with (
        MistralClient(
            api_key=stub.api_key, base_url=stub.base_url, dialect="mistral", timeout=0.3
        ) as c,
        pytest.raises(APITimeoutError),
    ):
        c.complete(USER)
    assert len(stub.chat_requests) == 1


def test_missing_key_for_la_plateforme_is_refused_before_sending(monkeypatch):
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    with (
        MistralClient(base_url="https://api.mistral.ai/v1") as c,
        pytest.raises(MissingAPIKeyError, match="MISTRAL_API_KEY"),
    ):
        c.complete(USER)  # no network here: the error comes before any connection


def test_a_server_asking_for_the_missing_key_says_how_to_set_it(stub, monkeypatch):
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    with (
        MistralClient(base_url=stub.base_url, dialect="mistral") as c,
        pytest.raises(MissingAPIKeyError, match="MISTRAL_API_KEY") as info,
    ):
        c.complete(USER)
    assert "asks for one (HTTP 401)" in str(info.value)
    assert "%mistral" not in str(info.value) and "getpass" not in str(info.value)
    assert len(stub.chat_requests) == 1  # not retried
    assert "authorization" not in stub.chat_requests[0].headers


def test_settings_come_from_the_environment(stub_env):
    with MistralClient(dialect="mistral") as c:
        assert c.base_url == stub_env.base_url and c.model == "mistral-large-2407"
        assert c.complete(USER).content


def test_list_models(stub, client):
    models = client.list_models()
    ids = {m.id for m in models}
    assert "mistral-large-2407" in ids
    large = next(m for m in models if m.id == "mistral-large-2407")
    assert large.max_context_length == 131072


def test_connections_are_reused(stub, client):
    client.complete(USER)
    http = client.http
    client.complete(USER)
    assert client.http is http


def test_vllm_dialect_translates_and_decodes_fragments(stub):
    stub.dialect = "vllm"
    tool = {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    }
    with MistralClient(
        api_key=stub.api_key, base_url=stub.base_url, model="mistral-large-2407", dialect="openai"
    ) as c:
        stub.queue(
            Reply(tool_calls=[ToolCallSpec("lookup", {"q": "a fairly long argument value"})])
        )
        stream = c.stream(USER, random_seed=1, tools=[tool], tool_choice="any", safe_prompt=True)
        list(stream)
        body = stub.last_request.body
        assert body["seed"] == 1 and "random_seed" not in body and "safe_prompt" not in body
        assert body["tool_choice"] == "required"
        assert body["stream_options"] == {"include_usage": True}
        (call,) = stream.completion.tool_calls
        assert call.arguments == {"q": "a fairly long argument value"}
        assert stream.completion.usage is not None and stream.completion.usage.total_tokens > 0
        c.complete([*USER, {"role": "assistant", "content": "Sure", "prefix": True}])
        body = stub.last_request.body
        assert body["continue_final_message"] is True and "prefix" not in body["messages"][-1]


def test_async_client_complete_and_stream(stub):
    async def run():
        async with AsyncMistralClient(
            api_key=stub.api_key, base_url=stub.base_url, dialect="mistral", backoff=0.01
        ) as c:
            stub.queue(Reply(text="async hello"), Fault(503), Reply(text="streamed reply here"))
            done = await c.complete(USER)
            stream = c.stream(USER)
            texts = [d.text async for d in stream]
            models = await c.list_models()
            return done, "".join(texts), stream.completion, models

    done, streamed, completion, models = asyncio.run(run())
    assert done.content == "async hello"
    assert streamed == "streamed reply here" == completion.content
    assert models


def test_async_stream_drop_keeps_partial(stub):
    async def run():
        async with AsyncMistralClient(
            api_key=stub.api_key, base_url=stub.base_url, dialect="mistral"
        ) as c:
            stub.queue(Drop(after_chunks=3, reply=Reply(text="one two three four five six")))
            with pytest.raises(StreamError) as info:
                async for _ in c.stream(USER):
                    pass
            return info.value.partial

    assert asyncio.run(run()).content


def test_streams_and_completions_reuse_one_connection(stub, client):
    for _ in range(3):
        list(client.stream(USER))
        client.complete(USER)
    ports = {r.client_port for r in stub.chat_requests}
    assert len(stub.chat_requests) == 6 and len(ports) == 1


def test_async_streams_reuse_one_connection(stub):
    async def run():
        async with AsyncMistralClient(
            api_key=stub.api_key, base_url=stub.base_url, dialect="mistral"
        ) as c:
            for _ in range(3):
                async for _ in c.stream(USER):
                    pass

    asyncio.run(run())
    assert len({r.client_port for r in stub.chat_requests}) == 1


def test_two_threads_asking_for_the_pool_at_once_share_one(monkeypatch):
    """The warm-up thread and the first question used to build an httpx.Client each (and
    an SSL context each); one was dropped unclosed."""
    import threading

    import httpx

    from mistral_magic.api.client_core import tls_context

    real_init = httpx.Client.__init__
    started = []
    second = threading.Event()

    def slow_init(self, *args, **kwargs):
        started.append(threading.current_thread().name)
        if len(started) == 2:
            second.set()
        second.wait(1.0)  # give a second builder every chance to start (it must not)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(httpx.Client, "__init__", slow_init)
    client = MistralClient(api_key="k", base_url="http://127.0.0.1:9/v1")
    pools = []
    threads = [threading.Thread(target=lambda: pools.append(client.http)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(started) == 1 and pools[0] is pools[1]
    assert tls_context(True) is tls_context(True)  # one CA bundle for the process
    client.close()
