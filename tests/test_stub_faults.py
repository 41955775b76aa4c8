"""Scripted faults, dropped connections, pacing, recording and extension hooks of the stub."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.stub import (
    ApiError,
    CaptureReplay,
    Drop,
    Fault,
    RecordedRequest,
    Reply,
    Response,
    StubServer,
)
from tests.stub.sse import chunks

MODEL = "mistral-large-2407"
USER = [{"role": "user", "content": "Hi"}]
REPO = Path(__file__).resolve().parents[1]


def body(**fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": USER, **fields}


def test_429_with_retry_after_as_the_gateway_sends_it(stub, stub_http):
    stub.queue(Fault(429, headers={"Retry-After": "1"}))
    response = stub_http.post("/chat/completions", json=body())
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.json() == {"message": "Requests rate limit exceeded"}
    assert stub_http.post("/chat/completions", json=body()).status_code == 200


def test_fault_times_serves_it_in_a_row(stub, stub_http):
    stub.queue(Fault(503, times=3), Reply("back"))
    statuses = [stub_http.post("/chat/completions", json=body()).status_code for _ in range(4)]
    assert statuses == [503, 503, 503, 200]
    assert stub.queued == []


def test_faults_come_before_validation(stub, stub_http):
    stub.queue(Fault(429))
    response = stub_http.post("/chat/completions", json={"seed": 1})
    assert response.status_code == 429


@pytest.mark.parametrize("status", [401, 500, 502, 503, 504])
def test_default_fault_bodies_are_gateway_json(stub, stub_http, status):
    stub.queue(Fault(status))
    response = stub_http.post("/chat/completions", json=body(stream=True))
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    data = response.json()
    assert isinstance(data["message"], str) and re.fullmatch(r"[0-9a-f]{32}", data["request_id"])


def test_fault_body_can_be_a_dict_or_verbatim_text(stub, stub_http):
    envelope = {"object": "error", "message": "Rate limit exceeded", "type": "rate_limited",
                "param": None, "code": "1300"}  # fmt: skip
    stub.queue(Fault(429, body=envelope), Fault(500, body="upstream exploded"))
    first = stub_http.post("/chat/completions", json=body())
    assert first.json() == envelope
    second = stub_http.post("/chat/completions", json=body())
    assert (second.status_code, second.text) == (500, "upstream exploded")


def test_drop_mid_stream_is_an_incomplete_chunked_read(stub, stub_http):
    stub.queue(Drop(after_chunks=3, reply=Reply("one two three four five six")))
    received: list[str] = []
    stream = stub_http.stream("POST", "/chat/completions", json=body(stream=True))
    with pytest.raises(httpx.RemoteProtocolError), stream as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                received.append(line)
    assert len(received) == 3
    assert all("[DONE]" not in line and '"finish_reason":null' in line for line in received)


def test_drop_a_non_stream_request_closes_without_response(stub, stub_http):
    stub.queue(Drop())
    with pytest.raises(httpx.RemoteProtocolError):
        stub_http.post("/chat/completions", json=body())
    assert stub_http.post("/chat/completions", json=body()).status_code == 200


def test_drop_never_sends_done(stub, stub_http):
    stub.queue(Drop(after_chunks=99))
    with pytest.raises(httpx.RemoteProtocolError):
        stub_http.post("/chat/completions", json=body(stream=True))


def test_token_delay_paces_the_stream(stub, stub_http):
    stub.queue(Reply(chunks=["a"] * 6))
    fast = stub_http.post("/chat/completions", json=body(stream=True))
    assert len(chunks(fast.text)) == 7
    stub.token_delay = 0.2
    arrivals: list[float] = []
    unfinished_at_first_piece: bool | None = None
    started = time.perf_counter()
    stub.queue(Reply(chunks=["a"] * 6))
    with stub_http.stream("POST", "/chat/completions", json=body(stream=True)) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.perf_counter() - started)
                if unfinished_at_first_piece is None:
                    unfinished_at_first_piece = stub.chat_requests[-1].answered_at == 0.0
    assert len(arrivals) == 8
    assert arrivals[-1] >= 7 * 0.2  # a lower bound: load only adds
    assert unfinished_at_first_piece  # pieces arrive as written, not all at the end


def test_latency_delays_any_response(stub, stub_http):
    stub.latency = 0.3
    started = time.perf_counter()
    stub_http.get("/models")
    assert time.perf_counter() - started >= 0.3


def test_a_request_from_before_a_reset_never_takes_what_was_queued_after(stub, stub_http):
    """A request still sleeping through ``latency`` when its client gave up (and the test
    reset the stub) must not answer with, and so use up, the next test's reply."""
    stub.latency = 1.0
    with pytest.raises(httpx.ReadTimeout):
        stub_http.post("/chat/completions", json=body(), timeout=0.2)
    stub.reset()
    stub.queue(Reply(text="for the next request"))
    assert stub.wait_idle()
    assert stub.queued == [Reply(text="for the next request")]
    reply = stub_http.post("/chat/completions", json=body()).json()
    assert reply["choices"][0]["message"]["content"] == "for the next request"


def test_requests_are_recorded(stub, stub_http):
    assert stub.last_request is None
    stub_http.get("/models?page=2&tag=a&tag=b", headers={"X-Trace": "t1"})
    stub_http.post("/chat/completions", json=body(temperature=0.2))
    stub_http.post("/chat/completions", content=b"not json")
    first, second, third = stub.requests
    assert isinstance(first, RecordedRequest)
    assert (first.method, first.path) == ("GET", "/v1/models")
    assert first.query == {"page": "2", "tag": ["a", "b"]}
    assert first.headers["x-trace"] == "t1" and first.body is None and first.raw == b""
    assert second.body == body(temperature=0.2)
    assert json.loads(second.raw) == second.body
    assert second.headers["authorization"] == "Bearer test-key"
    assert (third.body, third.raw) == (None, b"not json")
    assert stub.last_request is third
    assert stub.chat_requests == [second, third]


def test_reset_restores_everything(stub, stub_http):
    stub.queue(Fault(429, times=5))
    stub.dialect = "vllm"
    stub.default_reply = "x"
    stub.models.append("extra")
    stub_http.get("/models")
    stub.token_delay = stub.latency = 0.5
    stub.reset()
    assert (stub.queued, stub.requests, stub.dialect) == ([], [], "mistral")
    assert (stub.token_delay, stub.latency, stub.default_reply) == (
        0,
        0,
        "This is the stub's reply.",
    )
    assert "extra" not in stub.models


def test_dialect_must_be_known(stub):
    with pytest.raises(ValueError):
        stub.dialect = "openai"


def test_capture_replay_is_byte_for_byte(stub, stub_http, captures_dir):
    path = captures_dir / "stream-large-usage-in-final-empty-delta.json"
    capture = json.loads(path.read_text())
    stub.queue(CaptureReplay(path))
    response = stub_http.post("/chat/completions", json=body(stream=True))
    assert response.status_code == 200
    assert response.text == capture["response"]["body"]
    for name, value in capture["response"]["headers"].items():
        assert response.headers[name] == value


def test_capture_replay_of_an_error_comes_before_validation(stub, stub_http):
    stub.queue(CaptureReplay("error-429-rate-limited-1300.json"))  # a bare name works too
    response = stub_http.post("/chat/completions", json={"nonsense": True})
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/json"
    assert response.json()["code"] == "1300"


def test_capture_replay_of_a_200_waits_for_a_valid_request(stub, stub_http):
    stub.queue(CaptureReplay("complete-large-length-finish-2024.json"))
    assert stub_http.post("/chat/completions", json={"nonsense": True}).status_code == 422
    response = stub_http.post("/chat/completions", json=body())
    assert response.json()["id"] == "b5899875951449e9a2997246a3a54d21"


def test_only_script_items_can_be_queued(stub):
    with pytest.raises(TypeError):
        stub.queue("hello")  # type: ignore[arg-type]


def test_routes_can_be_added_with_path_parameters(stub, stub_http):
    files: dict[str, bytes] = {}

    def upload(server: StubServer, request: RecordedRequest, params: dict[str, str]) -> Response:
        files["f1"] = request.raw
        return Response(200, {"id": "f1", "object": "file", "bytes": len(request.raw)})

    def content(server: StubServer, request: RecordedRequest, params: dict[str, str]) -> Response:
        if params["file_id"] not in files:
            raise ApiError(404, {"detail": "File not found"})
        return Response(200, files[params["file_id"]], content_type="application/octet-stream")

    stub.route("POST", "/v1/files", upload)
    stub.route("GET", "/v1/files/{file_id}/content", content)
    stub.on_reset(files.clear)
    assert stub_http.post("/files", content=b"abc").json()["bytes"] == 3
    assert stub_http.get("/files/f1/content").content == b"abc"
    assert stub_http.get("/files/f2/content").status_code == 404
    assert httpx.get(f"{stub.base_url}/files/f1/content").status_code == 401
    stub.reset()
    assert files == {}


def test_routes_can_be_registered_for_every_stub(monkeypatch):
    monkeypatch.setattr(StubServer, "_shared_routes", [])

    def ping(server: StubServer, request: RecordedRequest, params: dict[str, str]) -> Response:
        return Response(200, {"pong": server.dialect})

    StubServer.register_route("GET", "/v1/ping", ping, auth=False)
    with StubServer(dialect="vllm") as server:
        assert httpx.get(f"{server.base_url}/ping").json() == {"pong": "vllm"}


def test_no_api_key_means_no_auth():
    with StubServer(api_key=None) as server:
        assert httpx.get(f"{server.base_url}/models").status_code == 200


def test_context_manager_and_restart():
    server = StubServer()
    with server:
        first = server.base_url
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", first)
        assert server.root_url + "/v1" == first
    with pytest.raises(RuntimeError):
        _ = server.base_url
    server.start()
    try:
        assert httpx.get(f"{server.base_url}/models").status_code == 401
    finally:
        server.stop()


def test_stop_closes_idle_keep_alive_connections(stub, stub_http):
    stub_http.get("/models")
    assert stub.open_connections() == 1  # kept alive by the client
    server = stub._http._started()
    stub.stop()  # returns (pytest-timeout bounds it) with the idle connection closed
    assert server.wait_connections(lambda n: n == 0, 5)  # each handler saw its socket closed


def test_python_dash_m_runs_the_stub():
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.stub", "--port", "0", "--dialect", "vllm"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/v1", line)
        assert url, line
        headers = {"Authorization": "Bearer test-key"}
        data = httpx.get(f"{url.group(0)}/models", headers=headers).json()
        assert data["data"][0]["owned_by"] == "vllm"
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
