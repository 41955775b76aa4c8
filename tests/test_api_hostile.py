"""The client against hostile servers on loopback: stalls, trickles, endless replies, lines
without an end, protocol garbage, servers that echo the key. Every wait is bounded, nothing
billed is sent twice, and no error the user sees quotes a secret."""

from __future__ import annotations

import asyncio
import json

import pytest

from mistral_magic.api import (
    APITimeoutError,
    AsyncMistralClient,
    InvalidRequestError,
    MistralClient,
    ReplyTooLongError,
    ResponseFormatError,
    ServerError,
    ServerReportedError,
)
from tests.stub import Connection, Fault, HostileServer, Reply

USER = [{"role": "user", "content": "Say hello"}]
KEY = "sk-hostile-test-key-0123456789abcdefXYZ"
TIMEOUT = 0.5  # seconds without content before a request fails, kept short for the tests


def chunk(text: str) -> bytes:
    body = {
        "id": "x",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }
    return f"data: {json.dumps(body)}\n\n".encode()


def client_for(server: HostileServer, **options) -> MistralClient:
    options = {"timeout": TIMEOUT, "dialect": "mistral", "backoff": 0.01, **options}
    return MistralClient(api_key=KEY, base_url=server.base_url, **options)


def no_key_in(text: str) -> bool:
    """Not the key, nor any 8-character piece of it (a clipped key is still a leak)."""
    return not any(KEY[i : i + 8] in text for i in range(len(KEY) - 7))


# ------------------------------------------------------------------ stalls and trickles


def silence_after_headers(conn: Connection) -> None:
    conn.sse_headers()
    conn.pause(60)


def keep_alive_trickle(conn: Connection) -> None:
    """Comments and content-free events, forever: none of it is progress."""
    conn.sse_headers()
    empty = {"id": "x", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}}]}
    role = {"id": "x", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    beats = [b": keep-alive\n\n", b"data:\n\n", f"data: {json.dumps(empty)}\n\n".encode()]
    beats.append(f"data: {json.dumps(role)}\n\n".encode())
    beats.append(b"data: {}\n\n")
    n = 0
    while True:
        conn.chunk(beats[n % len(beats)])
        n += 1
        conn.pause(0.05)


def text_then_silence(conn: Connection) -> None:
    conn.sse_headers()
    conn.chunk(chunk("The first words"))
    conn.pause(60)


@pytest.mark.parametrize(
    "script", [silence_after_headers, keep_alive_trickle], ids=["silence", "trickle"]
)
def test_a_stalled_stream_times_out_once_and_is_not_sent_again(script):
    with HostileServer(script) as server, client_for(server) as client:
        with pytest.raises(APITimeoutError) as info:
            list(client.stream(USER))
        assert "timed out" in str(info.value)
        assert server.client_left.wait(10)  # the client hung up
        assert server.requests == 1  # a read timeout is never sent again


def test_a_stall_after_some_text_keeps_the_text():
    with HostileServer(text_then_silence) as server, client_for(server) as client:
        seen = []
        with pytest.raises(APITimeoutError, match="timed out") as info:
            for delta in client.stream(USER):
                seen.append(delta.text)
        assert info.value.partial.content == "The first words" == "".join(seen)
        assert server.requests == 1


def test_headers_that_never_come_time_out_without_a_retry():
    def nothing(conn: Connection) -> None:
        conn.pause(60)

    with HostileServer(nothing) as server, client_for(server) as client:
        with pytest.raises(APITimeoutError, match="timed out"):
            client.complete(USER)
        assert server.requests == 1


# A steady stream that lasts longer than the timeout in all: the 100 words stream as 290
# chunks 0.02 s apart, over 5 s (the stub sleeps between them), against 1.5 s without
# content, a bound that no gap between two chunks comes near even on a loaded machine.
STEADY_TIMEOUT = 1.5


def test_a_slow_but_steady_long_answer_is_never_cut(stub):
    """Longer than the timeout in total, but content keeps coming: it must arrive whole."""
    words = " ".join(f"w{i}" for i in range(100))
    stub.token_delay = 0.02
    stub.queue(Reply(text=words))
    with MistralClient(
        api_key=stub.api_key, base_url=stub.base_url, dialect="mistral", timeout=STEADY_TIMEOUT
    ) as client:
        stream = client.stream(USER)
        assert "".join(d.text for d in stream) == words
        assert stream.completion.finish_reason == "stop"


def test_a_retry_wait_longer_than_the_timeout_is_not_a_stall(stub):
    """The stall clock starts when the try that answers was sent, not at the first try."""
    stub.queue(Fault(429, headers={"Retry-After": "2"}), Reply(text="worth the wait"))
    with MistralClient(
        api_key=stub.api_key, base_url=stub.base_url, dialect="mistral", timeout=STEADY_TIMEOUT
    ) as client:
        assert "".join(d.text for d in client.stream(USER)) == "worth the wait"


def test_async_stalls_and_trickles_time_out_without_a_retry():
    async def run(server: HostileServer) -> APITimeoutError:
        async with AsyncMistralClient(
            api_key=KEY, base_url=server.base_url, dialect="mistral", timeout=TIMEOUT
        ) as client:
            with pytest.raises(APITimeoutError) as info:
                async for _ in client.stream(USER):
                    pass
            return info.value

    for script in (silence_after_headers, keep_alive_trickle, text_then_silence):
        with HostileServer(script) as server:
            error = asyncio.run(run(server))
            assert "timed out" in str(error)
            assert server.client_left.wait(10)
            assert server.requests == 1


def test_async_slow_but_steady_answer_is_never_cut(stub):
    words = " ".join(f"w{i}" for i in range(100))
    stub.token_delay = 0.02
    stub.queue(Reply(text=words))

    async def run() -> str:
        async with AsyncMistralClient(
            api_key=stub.api_key,
            base_url=stub.base_url,
            dialect="mistral",
            timeout=STEADY_TIMEOUT,
        ) as client:
            return "".join([d.text async for d in client.stream(USER)])

    assert asyncio.run(run()) == words


# ------------------------------------------------------------------ sizes


def endless_reply(conn: Connection) -> None:
    conn.sse_headers()
    while True:
        conn.chunk(chunk("lorem ipsum " * 50))


def test_an_endless_reply_is_cut_at_the_bound_and_its_stream_closed():
    with HostileServer(endless_reply) as server, client_for(server, max_reply_chars=20_000) as c:
        with pytest.raises(ReplyTooLongError, match="20,000 characters") as info:
            for _ in c.stream(USER):
                pass
        assert 20_000 <= len(info.value.partial.content) < 21_000  # cut at the bound
        assert server.client_left.wait(10)  # closed upstream
        assert server.requests == 1


def line_without_end(conn: Connection) -> None:
    conn.sse_headers()
    conn.chunk(b"data: ")
    while True:
        conn.chunk(b"x" * 65536)


def test_a_line_without_end_is_bounded_and_not_sent_again():
    # the line bound is 8 characters per reply character: 800 kB here
    with (
        HostileServer(line_without_end) as server,
        client_for(server, max_reply_chars=100_000) as c,
    ):
        with pytest.raises(ResponseFormatError, match="longer than"):
            list(c.stream(USER))
        assert server.client_left.wait(10)
        assert server.requests == 1


# ------------------------------------------------------------------ protocol garbage and secrets


def html_behind_sse_headers(conn: Connection) -> None:
    conn.sse_headers()
    page = f"<html><head><title>Gateway</title></head><body>Authorization: Bearer {KEY}"
    conn.chunk((page + "</body></html>\n").encode())
    conn.end()


def first_event_not_json(conn: Connection) -> None:
    conn.sse_headers()
    conn.chunk(f"data: <error>your header was Authorization: Bearer {KEY}</error>\n\n".encode())
    conn.end()


def error_event_mid_stream(conn: Connection) -> None:
    conn.sse_headers()
    conn.chunk(chunk("Partial "))
    error = {"object": "error", "message": f"upstream rejected Bearer {KEY}", "type": "x"}
    conn.chunk(f"data: {json.dumps(error)}\n\n".encode())
    conn.end()


def html_200_echoing_the_key(conn: Connection) -> None:
    page = f"<html><body><pre>Authorization: Bearer {KEY}</pre></body></html>"
    conn.send(
        f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len(page)}\r\n\r\n"
        f"{page}".encode()
    )


@pytest.mark.parametrize(
    "script, error",
    [
        (html_behind_sse_headers, ResponseFormatError),
        (first_event_not_json, ResponseFormatError),
        (error_event_mid_stream, ServerReportedError),
    ],
    ids=["html-behind-sse", "first-event-not-json", "error-event"],
)
def test_protocol_garbage_is_not_retried_and_never_quotes_the_key(script, error):
    with HostileServer(script) as server, client_for(server) as client:
        with pytest.raises(error) as info:
            list(client.stream(USER))
        shown = str(info.value)
        assert no_key_in(shown) and no_key_in(repr(info.value)), shown
        assert server.requests == 1  # it may already be billed: never sent twice


def test_a_200_html_page_echoing_the_header_shows_no_key():
    with HostileServer(html_200_echoing_the_key) as server, client_for(server) as client:
        with pytest.raises(ResponseFormatError) as info:
            client.complete(USER)
        assert no_key_in(str(info.value)) and "HTML page" in str(info.value)
        assert server.requests == 1


def test_a_200_with_an_error_object_shows_the_servers_message(stub):
    body = {"object": "error", "message": "Service tier capacity exceeded", "type": "x"}
    with MistralClient(api_key=stub.api_key, base_url=stub.base_url, dialect="mistral") as c:
        stub.route("POST", "/v1/chat/completions", lambda *_: _json_200(body))
        with pytest.raises(ServerReportedError, match="Service tier capacity exceeded"):
            c.complete(USER)
        assert len(stub.chat_requests) == 1


def _json_200(body: dict):
    from tests.stub import Response

    return Response(200, body)


@pytest.mark.parametrize("status", [400, 500])
def test_error_bodies_echoing_the_key_never_show_it(stub, status):
    # The key at every offset around the clipping point: clipping before scrubbing would
    # leave a piece of it.
    with MistralClient(
        api_key=KEY, base_url=stub.base_url, dialect="mistral", max_retries=0
    ) as client:
        stub.api_key = None  # the stub accepts anything; its answers echo what we send
        for pad in (0, 180, 280, 290, 480, 495):
            message = "x" * pad + f" Authorization: Bearer {KEY} rejected"
            stub.queue(Fault(status, body={"object": "error", "message": message, "type": "t"}))
            with pytest.raises((InvalidRequestError, ServerError)) as info:
                client.complete(USER)
            assert no_key_in(str(info.value)), (pad, str(info.value))


def test_credentials_in_the_base_url_never_show(stub):
    from mistral_magic.api import APIConnectionError

    url = stub.base_url.replace("http://", "http://alice:pa55-w0rd-s3cret@")
    stub.api_key = None  # httpx sends the URL's credentials as Basic auth, not our key
    with MistralClient(api_key=KEY, base_url=url, dialect="mistral", max_retries=0) as client:
        assert "pa55-w0rd-s3cret" not in repr(client) and "alice" not in client.display_url
        stub.queue(Fault(400, body={"message": f"bad request to {url}"}))
        with pytest.raises(InvalidRequestError) as info:
            client.complete(USER)
        assert "pa55-w0rd-s3cret" not in str(info.value)
    closed = "http://alice:pa55-w0rd-s3cret@127.0.0.1:9/v1"  # nothing listens on port 9
    with MistralClient(api_key=KEY, base_url=closed, dialect="mistral", max_retries=0) as client:
        with pytest.raises(APIConnectionError) as info:
            client.complete(USER)
        assert "pa55-w0rd-s3cret" not in str(info.value) and "alice" not in str(info.value)
