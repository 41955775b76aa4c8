"""SSE framing and chunk accumulation: pure functions, fed by hand and fuzzed."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mistral_magic.api.errors import MistralError, ModelNotFoundError, ServerReportedError
from mistral_magic.api.sse import SSEDecoder, StreamAccumulator, decode_stream, iter_payloads


def chunk(delta: dict, finish: str | None = None, usage: dict | None = None, index: int = 0):
    body = {
        "id": "abc",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "mistral-large-2407",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        body["usage"] = usage
    return json.dumps(body)


def test_framing_variants_give_the_same_payloads():
    events = ["one", '{"a": 1}', "[DONE]"]
    for sep in ("\n", "\r\n", "\r"):
        text = "".join(f"data: {e}{sep}{sep}" for e in events)
        assert list(iter_payloads([text])) == events
        # byte by byte, so every split point (including inside CRLF) is crossed
        assert list(iter_payloads([bytes([b]) for b in text.encode()])) == events


def test_bom_comments_other_fields_and_multiline_data():
    text = "\ufeff: keep-alive\n\nevent: message\nid: 7\nretry: 10\ndata: a\ndata:b\n\n"
    assert list(iter_payloads([text.encode()])) == ["a\nb"]


def test_last_event_without_trailing_blank_line_is_kept():
    assert list(iter_payloads(["data: x\n\ndata: [DONE]"])) == ["x", "[DONE]"]


def test_utf8_split_inside_a_character():
    raw = "data: héllo 🙂\n\n".encode()
    parts = [raw[:9], raw[9:15], raw[15:]]
    assert list(iter_payloads(parts)) == ["héllo 🙂"]


def test_decoder_handles_empty_feeds():
    decoder = SSEDecoder()
    assert decoder.feed("") == []
    assert decoder.feed_bytes(b"") == []
    assert decoder.finish() == []


def test_text_stream_accumulates_content_finish_and_usage():
    stream = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}, "stop", {"prompt_tokens": 3, "completion_tokens": 2}),
        "[DONE]",
    ]
    acc = StreamAccumulator()
    texts = [d.text for p in stream for d in acc.add(p)]
    assert texts == ["", "Hel", "lo"]
    done = acc.completion()
    assert (done.content, done.finish_reason, done.id) == ("Hello", "stop", "abc")
    assert done.usage.total_tokens == 5
    assert acc.done and acc.finished


def test_content_as_chunk_list_with_thinking():
    acc = StreamAccumulator()
    acc.add(
        chunk({"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "hm"}]}]})
    )
    acc.add(chunk({"content": [{"type": "text", "text": "4"}]}))
    acc.add(chunk({"content": "2"}, "stop"))
    done = acc.completion()
    assert (done.content, done.thinking) == ("42", "hm")


def test_tool_calls_whole_without_index_are_separate_calls():
    calls = [
        {"id": "aaaaaaaaa", "function": {"name": "plus", "arguments": '{"a": 1}'}},
        {"id": "bbbbbbbbb", "function": {"name": "minus", "arguments": '{"a": 2}'}},
    ]
    acc = StreamAccumulator()
    acc.add(chunk({"tool_calls": calls}, "tool_calls"))
    done = acc.completion()
    assert [(c.id, c.name, c.arguments, c.index) for c in done.tool_calls] == [
        ("aaaaaaaaa", "plus", {"a": 1}, 0),
        ("bbbbbbbbb", "minus", {"a": 2}, 1),
    ]


def test_tool_call_fragments_keyed_by_index_are_joined():
    acc = StreamAccumulator()
    first = {"index": 0, "id": "abcDEF123", "type": "function"}
    acc.add(chunk({"tool_calls": [{**first, "function": {"name": "f", "arguments": ""}}]}))
    acc.add(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"x": '}}]}))
    acc.add(chunk({"tool_calls": [{"index": 0, "function": {"name": "", "arguments": "3}"}}]}))
    acc.add(chunk({}, "tool_calls"))
    (call,) = acc.completion().tool_calls
    assert (call.id, call.name, call.arguments, call.raw_arguments) == (
        "abcDEF123",
        "f",
        {"x": 3},
        '{"x": 3}',
    )


def test_truncated_tool_arguments_are_kept_raw():
    acc = StreamAccumulator()
    raw = '{"summary": "The cache'
    acc.add(
        chunk(
            {"tool_calls": [{"id": "abcDEF123", "function": {"name": "f", "arguments": raw}}]},
            "length",
        )
    )
    (call,) = acc.completion().tool_calls
    assert call.arguments == {} and call.raw_arguments == raw and not call.arguments_valid


def test_usage_in_a_trailing_chunk_without_choices():
    acc = StreamAccumulator()
    acc.add(chunk({"content": "hi"}, "stop"))
    acc.add(
        json.dumps(
            {
                "id": "abc",
                "choices": [],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
            }
        )
    )
    assert acc.completion().usage.total_tokens == 6


def test_interleaved_choices_stay_apart():
    acc = StreamAccumulator()
    acc.add(chunk({"content": "a"}, index=1))
    acc.add(chunk({"content": "b"}, index=0))
    acc.add(chunk({"content": "c"}, "stop", index=1))
    acc.add(chunk({"content": "d"}, "stop", index=0))
    done = acc.completion()
    assert [c.content for c in done.choices] == ["bd", "ac"]
    assert done.content == "bd"


def test_error_event_inside_a_stream_shows_the_servers_message():
    acc = StreamAccumulator()
    with pytest.raises(ServerReportedError, match="overloaded"):
        acc.add(json.dumps({"object": "error", "message": "overloaded", "type": "x"}))
    with pytest.raises(ServerReportedError, match="boom"):
        acc.add(json.dumps({"error": {"message": "boom"}}))
    # a status inside the body maps it like the HTTP error it stands for
    body = {"object": "error", "message": "Invalid model: x", "type": "invalid_model"}
    with pytest.raises(ModelNotFoundError):
        acc.add(json.dumps({**body, "code": "1500", "raw_status_code": 400}))


def test_unfinished_stream_is_not_finished():
    acc = StreamAccumulator()
    acc.add(chunk({"content": "partial"}))
    assert not acc.finished
    assert acc.completion().content == "partial"


def test_decode_stream_stops_at_done():
    text = f"data: {chunk({'content': 'x'}, 'stop')}\n\ndata: [DONE]\n\ndata: garbage\n\n"
    assert decode_stream([text]).content == "x"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
chunk_like = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values,
        "model": json_values,
        "created": json_values,
        "usage": json_values,
        "object": st.sampled_from(["chat.completion.chunk", "error"]) | json_values,
        "choices": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "index": json_values,
                    "finish_reason": json_values,
                    "delta": st.fixed_dictionaries(
                        {},
                        optional={
                            "content": json_values,
                            "tool_calls": st.lists(json_values, max_size=3) | json_values,
                            "role": json_values,
                        },
                    )
                    | json_values,
                },
            )
            | json_values,
            max_size=3,
        )
        | json_values,
    },
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=12))
def test_fuzz_random_bytes_raise_only_our_errors(parts):
    acc = StreamAccumulator()
    try:
        for payload in iter_payloads(parts):
            acc.add(payload)
        acc.completion()
    except MistralError:
        pass


@settings(max_examples=150, deadline=None)
@given(st.lists(chunk_like | json_values, max_size=8), st.sampled_from(["\n", "\r\n", "\r"]))
def test_fuzz_chunk_shaped_garbage_raises_only_our_errors(chunks, sep):
    text = "".join(f"data: {json.dumps(c)}{sep}{sep}" for c in chunks)
    acc = StreamAccumulator()
    try:
        for payload in iter_payloads([text.encode()]):
            acc.add(payload)
        done = acc.completion()
        assert isinstance(done.content, str)
        assert all(isinstance(c.arguments, dict) for c in done.tool_calls)
    except MistralError:
        pass
