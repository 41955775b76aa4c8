"""Every recorded capture, served verbatim by the stub over a real socket, decodes right.

Expectations are written out by hand from the captures (see their README): text ends,
finish reasons, usage, tool calls; error captures map to the right error class.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mistral_magic.api import (
    AuthenticationError,
    ContextLengthError,
    InvalidRequestError,
    MistralClient,
    ModelNotFoundError,
    RateLimitError,
)
from tests.stub import CaptureReplay

# name: (text ending, finish_reason, (prompt, completion, total), [(id, name, arguments)])
STREAMS = {
    "stream-large-length-finish-2024": (" of the most recognizable", "length", (34, 100, 134), []),
    "stream-large-usage-in-final-empty-delta": (
        "Hello! How are you today?",
        "stop",
        (7, 7, 14),
        [],
    ),
    "stream-magistral-medium-thinking-chunks": (
        "n ensure a safe crossing.",
        "stop",
        (10, 232, 242),
        [],
    ),
    "stream-open-mistral-7b-explicit-nulls-2024": (
        'ay the word "banana," you',
        "length",
        (15, 100, 115),
        [],
    ),
    "stream-small-final-chunk-carries-text-and-usage": ("1, 2, 3", "stop", (22, 8, 30), []),
    "stream-small-n2-interleaved-choices": ("Aardvark", "stop", (20, 8, 28), []),
    "stream-small-reasoning-effort-mixed-delta": ("144", "stop", (31, 66, 97), []),
    "stream-tiny-p-padding-field": ("gs a smile to your face.)", "stop", (11, 80, 91), []),
    "tools-stream-glm-incremental-argument-deltas": (
        "",
        "tool_calls",
        (171, 14, 185),
        [("chatcmpl-tool-9f149c74c42f265b", "webSearchTool", {"query": "current Berlin weather"})],
    ),
    "tools-stream-large-parallel-calls-indexed-2025": (
        "",
        "tool_calls",
        (164, 25, 189),
        [
            ("yBvJuId6u", "search", {"query": "Detroit Tigers game time today"}),
            ("ihQrVBDfy", "weather", {"city": "Detroit"}),
        ],
    ),
    "tools-stream-large-parallel-calls-no-index-2024": (
        "",
        "tool_calls",
        (187, 45, 232),
        [("nqjf8Hqe1", "plus", {"a": 1, "b": 2}), ("ATcpCKul3", "minus", {"a": 2, "b": 1})],
    ),
    "tools-stream-large-single-call-whole-delta": (
        "",
        "tool_calls",
        (93, 24, 117),
        [("x2LypFllt", "plus", {"a": 1, "b": 2})],
    ),
    "tools-stream-small-after-tool-result": (
        "ind speed of **10 km/h**.",
        "stop",
        (222, 43, 265),
        [],
    ),
    "tools-stream-small-content-null-2024": (
        "",
        "tool_calls",
        (96, 23, 119),
        [("EscTeQY62", "get_weather", {"city": "San Francisco"})],
    ),
    "tools-stream-small-truncated-by-max-tokens": (
        "",
        "length",
        (137, 16, 153),
        [("call_REDACTED_1", "file_report", {})],
    ),
    "tools-stream-small-type-and-index-2026": (
        "",
        "tool_calls",
        (159, 28, 187),
        [("g6fVbXS8K", "weather", {"latitude": "52.5200", "longitude": "13.4050"})],
    ),
}

COMPLETES = {
    "complete-large-4-reasoning-high": ("3", "stop", (26, 112, 138), []),
    "complete-large-length-finish-2024": (None, "length", (34, 100, 134), []),
    "complete-pixtral-request-answered-by-ministral": (None, "stop", (41, 44, 85), []),
    "complete-small-json-object-mode": ('{"result": 8}', "stop", (24, 7, 31), []),
    "complete-small-json-schema-strict": ('{"name": "Bob", "age": 30}', "stop", (8, 14, 22), []),
    "complete-small-reasoning-effort-thinking-content": ("144", "stop", (31, 66, 97), []),
    "complete-tiny-gzip-wire-key-order": (None, "stop", (11, 96, 107), []),
    "tools-complete-large-after-tool-result": (None, "stop", (100, 29, 129), []),
    "tools-complete-large-auto-call": (
        "",
        "tool_calls",
        (77, 12, 89),
        [("KikbB849t", "get_weather", {"city": "Paris"})],
    ),
    "tools-complete-large-id-null-finish-stop-2024": (
        "",
        "stop",
        (179, 24, 203),
        [("null", "searchWeather", {"location": "Bergen, Norway"})],
    ),
    "tools-complete-small-forced-specific-function": (
        "",
        "tool_calls",
        (144, 28, 172),
        [("uNfcQGgtW", "weather", {"latitude": "41.9028", "longitude": "12.4964"})],
    ),
    "tools-complete-small-parallel-calls": (
        "",
        "tool_calls",
        (227, 36, 263),
        [
            ("wyFNfgjhN", "weather", {"latitude": "52.5200", "longitude": "13.4050"}),
            ("5K7IOShCC", "best_language_to_learn", {}),
        ],
    ),
    "tools-complete-small-truncated-empty-arguments": (
        "",
        "length",
        (137, 4, 141),
        [("call_REDACTED_1", "file_report", {})],
    ),
}

ERRORS = {
    "error-400-context-length-exceeded": ContextLengthError,
    "error-400-invalid-model-on-stream-request": ModelNotFoundError,
    "error-400-logprobs-not-enabled": InvalidRequestError,
    "error-401-invalid-api-key-2026": AuthenticationError,
    "error-401-kong-unauthorized-2025": AuthenticationError,
    "error-422-extra-forbidden-message-fields": InvalidRequestError,
    "error-422-extra-forbidden-top-level-param": InvalidRequestError,
    "error-429-kong-requests-rate-limit-exceeded": RateLimitError,
    "error-429-rate-limited-1300": RateLimitError,
}


def test_every_chat_capture_has_an_expectation(captures_dir: Path):
    names = {p.stem for p in captures_dir.glob("*.json") if not p.stem.startswith("models-")}
    assert names == set(STREAMS) | set(COMPLETES) | set(ERRORS)


def check(completion, expected):
    text, finish, usage, calls = expected
    if text is not None:
        assert completion.content.endswith(text)
    else:
        assert completion.content
    assert completion.finish_reason == finish
    u = completion.usage
    assert (u.prompt_tokens, u.completion_tokens, u.total_tokens) == usage
    assert [(c.id, c.name, c.arguments) for c in completion.tool_calls] == calls


def client_for(stub) -> MistralClient:
    return MistralClient(
        api_key=stub.api_key, base_url=stub.base_url, dialect="mistral", max_retries=0
    )


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_stream_capture_replayed_by_stub(stub, captures_dir, name):
    stub.queue(CaptureReplay(captures_dir / f"{name}.json"))
    with client_for(stub) as client:
        stream = client.stream([{"role": "user", "content": "hi"}])
        streamed = "".join(d.text for d in stream if d.index == 0)
        check(stream.completion, STREAMS[name])
        assert streamed == stream.completion.content


def test_thinking_and_second_choice_survive_the_replay(stub, captures_dir):
    stub.queue(CaptureReplay(captures_dir / "stream-magistral-medium-thinking-chunks.json"))
    stub.queue(CaptureReplay(captures_dir / "stream-small-n2-interleaved-choices.json"))
    with client_for(stub) as client:
        stream = client.stream([{"role": "user", "content": "hi"}])
        list(stream)
        assert stream.completion.thinking.startswith("Okay, the user is asking")
        assert "Okay" not in stream.completion.content
        stream = client.stream([{"role": "user", "content": "hi"}])
        list(stream)
        assert [c.content for c in stream.completion.choices] == ["Aardvark", "Whisper"]


@pytest.mark.parametrize("name", sorted(COMPLETES))
def test_complete_capture_replayed_by_stub(stub, captures_dir, name):
    stub.queue(CaptureReplay(captures_dir / f"{name}.json"))
    with client_for(stub) as client:
        check(client.complete([{"role": "user", "content": "hi"}]), COMPLETES[name])


@pytest.mark.parametrize("name", sorted(ERRORS))
@pytest.mark.parametrize("streamed", [False, True])
def test_error_capture_replayed_by_stub(stub, captures_dir, name, streamed):
    capture = json.loads((captures_dir / f"{name}.json").read_text())
    stub.queue(CaptureReplay(captures_dir / f"{name}.json"))
    model = (capture["request"]["body"] or {}).get("model", "mistral-large-2407")
    with client_for(stub) as client, pytest.raises(ERRORS[name]) as info:
        if streamed:
            list(client.stream([{"role": "user", "content": "hi"}], model=model))
        else:
            client.complete([{"role": "user", "content": "hi"}], model=model)
    error = info.value
    assert error.status == capture["response"]["status"]
    assert "\n" not in error.message and "Traceback" not in error.message
    assert stub.api_key not in error.message
