"""Fidelity against real recorded traffic (``tests/captures``).

Every capture with a recorded request is replayed at the stub, with the captured answer
scripted as the stub's reply, and the two responses are compared on shape: status, framing,
first and last chunks, key order, error bodies.

How requests are adapted (the only changes made):
- ``model`` is kept when the stub knows it (mistral-large-latest, mistral-small-latest, ...),
  else switched to ``mistral-large-2407`` (mistral-tiny). Aliases count as known
  (pixtral-12b is an alias of the stub's pixtral-12b-2409).
  The invalid-model capture keeps its deliberately unknown model.
- No field is dropped: every field these requests use (``n``, ``reasoning_effort``,
  ``safe_prompt``, json_schema ``strict``, ``prefix: false``, ...) exists in the API schema.
Where the stub follows one era of a shape that changed over time, the comparison says so.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.stub import Fault, Reply, StubServer, ToolCallSpec
from tests.stub.captures import find_captures_dir
from tests.stub.chat import served_names
from tests.stub.models import DEFAULT_MODELS
from tests.stub.sse import frames

FOLDER = find_captures_dir()
ALL = sorted(p.stem for p in FOLDER.glob("*.json")) if FOLDER else []
# Recorders that re-sorted keys: key order there is the recorder's, not the wire's.
SORTED = {"normalized-by-recorder", "reserialized"}


def load(folder: Path, name: str) -> dict[str, Any]:
    return json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))


def with_request(status: int) -> list[str]:
    assert FOLDER is not None or not ALL
    return [
        n
        for n in ALL
        if (c := load(FOLDER, n))["request"]["body"] is not None  # type: ignore[arg-type]
        and c["response"]["status"] == status
    ]


KNOWN = set(served_names(list(DEFAULT_MODELS), "mistral"))  # ids and their aliases


def adapted(body: dict[str, Any]) -> dict[str, Any]:
    body = dict(body)
    if body.get("model") not in KNOWN and body.get("model") != "definitely-not-a-model":
        body["model"] = "mistral-large-2407"
    return body


def sse_chunks(text: str) -> list[dict[str, Any]]:
    if text.endswith("data: [DONE]"):  # markdown captures drop the final blank line
        text += "\n\n"
    payloads = frames(text)
    assert payloads[-1] == "[DONE]"
    return [json.loads(p) for p in payloads[:-1]]


def captured_reply(capture: dict[str, Any]) -> Reply:
    """The captured answer of choice 0, as a Reply the stub can say again."""
    text, thinking = "", ""
    calls: dict[int, list[Any]] = {}
    body = capture["response"]["body"]
    if body.startswith("data:"):
        choices = [choice for chunk in sse_chunks(body) for choice in chunk["choices"]]
        deltas = [choice["delta"] for choice in choices if choice["index"] == 0]
    else:
        deltas = [json.loads(body)["choices"][0]["message"]]
    for delta in deltas:
        content = delta.get("content")
        if isinstance(content, str):
            text += content
        for item in content if isinstance(content, list) else []:
            if item["type"] == "text":
                text += item["text"]
            else:
                thinking += "".join(t["text"] for t in item["thinking"])
        for position, call in enumerate(delta.get("tool_calls") or []):
            entry = calls.setdefault(call.get("index", position), [call.get("id"), "", ""])
            entry[1] += call["function"].get("name", "")
            entry[2] += call["function"].get("arguments", "")
    specs = [
        ToolCallSpec(name, args, id if re.fullmatch(r"[a-zA-Z0-9]{9}", id or "") else None)
        for _, (id, name, args) in sorted(calls.items())
    ]
    return Reply(text=text, tool_calls=specs, thinking=thinking or None)


@pytest.fixture
def api(stub: StubServer, captures_dir: Path) -> httpx.Client:
    headers = {"Authorization": f"Bearer {stub.api_key}"}
    return httpx.Client(base_url=stub.base_url, headers=headers, timeout=30, verify=False)


def test_captures_are_there(captures_dir):
    assert len(list(captures_dir.glob("*.json"))) >= 40


# ----------------------------------------------------------------------- 200 replies


def _without(keys: list[str], *drop: str) -> list[str]:
    return [k for k in keys if k not in drop]


def compare_streams(capture: dict[str, Any], ours: list[dict[str, Any]], sent: dict[str, Any]):
    theirs = sse_chunks(capture["response"]["body"])
    ordered = capture["source"]["fidelity"] not in SORTED
    # Each choice opens with the role chunk.
    for index in range(int(sent.get("n") or 1)):
        first = next(c for c in theirs if c["choices"][0]["index"] == index)
        mine = next(c for c in ours if c["choices"][0]["index"] == index)
        assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        assert mine["choices"][0]["delta"] == first["choices"][0]["delta"]
    # The last chunk carries finish_reason and usage (the only usage); no chunk before it does.
    for chunks in (theirs, ours):
        assert chunks[-1]["choices"][0]["finish_reason"] is not None
        assert {"prompt_tokens", "completion_tokens", "total_tokens"} <= set(chunks[-1]["usage"])
        assert all(c.get("usage") is None for c in chunks[:-1])
    assert ours[-1]["choices"][0]["finish_reason"] == theirs[-1]["choices"][0]["finish_reason"]
    # Same top-level and choice key order (the "p" padding and "logprobs": null aside).
    if ordered:
        for mine, their in ((ours[0], theirs[0]), (ours[-1], theirs[-1])):
            assert list(mine) == _without(list(their), "p")
            assert list(mine["choices"][0]) == _without(list(their["choices"][0]), "logprobs")
        their_usage = [k for k in theirs[-1]["usage"] if k in ours[-1]["usage"]]
        assert list(ours[-1]["usage"]) == their_usage
    # Tool calls arrive whole, in the finishing chunk.
    their_calls = [c for c in theirs if c["choices"][0]["delta"].get("tool_calls")]
    my_calls = [c for c in ours if c["choices"][0]["delta"].get("tool_calls")]
    assert len(my_calls) == len(their_calls) <= 1
    if my_calls:
        assert my_calls[0] is ours[-1] and their_calls[0] is theirs[-1]
        for call in my_calls[0]["choices"][0]["delta"]["tool_calls"]:
            assert re.fullmatch(r"[a-zA-Z0-9]{9}", call["id"])
            assert set(call) >= {"id", "function"} and set(call["function"]) == {
                "name",
                "arguments",
            }


def compare_completions(capture: dict[str, Any], ours: dict[str, Any]) -> None:
    theirs = json.loads(capture["response"]["body"])
    ordered = capture["source"]["fidelity"] not in SORTED and theirs["created"] < 1735689600
    if ordered:  # 2024 captures: the order the stub follows
        assert list(ours) == list(theirs)
        assert list(ours["choices"][0]) == list(theirs["choices"][0])
        assert list(ours["choices"][0]["message"]) == list(theirs["choices"][0]["message"])
    else:  # 2025+ reorders keys (id, created, model, usage, object, choices)
        assert set(ours) == set(theirs)
        assert set(ours["choices"][0]) == set(theirs["choices"][0]) - {"logprobs"}
    message, their_message = ours["choices"][0]["message"], theirs["choices"][0]["message"]
    assert set(message) == set(their_message) - {"prefix"}
    assert ours["choices"][0]["finish_reason"] == theirs["choices"][0]["finish_reason"]
    if their_message.get("tool_calls"):
        assert message["content"] == their_message["content"] == ""
        for mine, their in zip(message["tool_calls"], their_message["tool_calls"], strict=True):
            assert set(mine) >= set(their) and mine["function"]["name"] == their["function"]["name"]
    else:
        assert message["tool_calls"] is their_message["tool_calls"] is None
    assert {"prompt_tokens", "completion_tokens", "total_tokens"} <= set(ours["usage"])


@pytest.mark.parametrize("name", with_request(200))
def test_recorded_request_is_accepted_and_answered_alike(stub, api, captures_dir, name):
    capture = load(captures_dir, name)
    sent = adapted(capture["request"]["body"])
    reply = captured_reply(capture)
    finish = None
    if capture["response"]["body"].startswith("data:"):
        finish = sse_chunks(capture["response"]["body"])[-1]["choices"][0]["finish_reason"]
    else:
        finish = json.loads(capture["response"]["body"])["choices"][0]["finish_reason"]
    reply.finish_reason = finish
    stub.queue(reply)
    response = api.post("/chat/completions", json=sent)
    assert response.status_code == 200, response.text
    expected_type = capture["response"]["headers"].get(
        "Content-Type", capture["response"]["headers"].get("content-type")
    )
    if expected_type:
        assert response.headers["content-type"] == expected_type
    if sent.get("stream"):
        ours = sse_chunks(response.text)
        compare_streams(capture, ours, sent)
        if not sent.get("max_tokens"):
            text = "".join(
                c["choices"][0]["delta"].get("content") or ""
                for c in ours
                if isinstance(c["choices"][0]["delta"].get("content"), str)
                and c["choices"][0]["index"] == 0
            )
            assert text == (reply.text or "")
    else:
        compare_completions(capture, response.json())


# ------------------------------------------------------------------------ error bodies


def test_422_extra_top_level_field_matches_capture(api, captures_dir):
    capture = load(captures_dir, "error-422-extra-forbidden-top-level-param")
    sent = {"model": "mistral-large-2407", "messages": [{"role": "user", "content": "Hi"}]}
    response = api.post("/chat/completions", json={**sent, "max_completion_tokens": 32000})
    assert response.status_code == 422
    assert response.json() == json.loads(capture["response"]["body"])
    assert list(response.json()) == list(json.loads(capture["response"]["body"]))


def test_422_extra_message_fields_match_capture(api, captures_dir):
    capture = load(captures_dir, "error-422-extra-forbidden-message-fields")
    message = {"role": "user", "content": "Hi", "name": None, "tool_calls": None}
    response = api.post(
        "/chat/completions", json={"model": "mistral-large-2407", "messages": [message]}
    )
    assert response.status_code == 422
    assert response.json() == json.loads(capture["response"]["body"])
    assert response.text == capture["response"]["body"]  # byte for byte, key order included


@pytest.mark.parametrize("name", with_request(400))
def test_400_matches_capture(api, captures_dir, name):
    capture = load(captures_dir, name)
    sent = adapted(capture["request"]["body"])
    if name == "error-400-context-length-exceeded":
        # Recorded when mistral-small-latest had a 131,072-token window (it has 262,144 in
        # the 2026 model list): replayed at a model whose window is still that size.
        sent["model"] = "mistral-large-2407"
    response = api.post("/chat/completions", json=sent)
    assert response.status_code == 400
    assert response.headers["content-type"] == capture["response"]["headers"]["content-type"]
    ours, theirs = response.json(), json.loads(capture["response"]["body"])
    assert set(ours) - {"raw_status_code"} == set(theirs) - {"raw_status_code"}
    for key in ("object", "type", "param", "code"):
        assert ours[key] == theirs[key]
    pattern = re.sub(r"\d{4,}", r"\\d+", re.escape(theirs["message"]))  # token counts differ
    assert re.fullmatch(pattern, ours["message"]), ours["message"]


def test_401_matches_the_gateway_capture(stub, captures_dir):
    capture = load(captures_dir, "error-401-kong-unauthorized-2025")
    body = capture["response"]["body"]
    pattern = re.escape(body).replace(re.search(r"[0-9a-f]{32}", body).group(0), "[0-9a-f]{32}")
    response = httpx.post(
        f"{stub.base_url}/chat/completions",
        json=capture["request"]["body"],
        headers={"Authorization": "Bearer not-the-key"},
    )
    assert response.status_code == 401
    assert re.fullmatch(pattern, response.text)
    assert response.headers["content-type"] == capture["response"]["headers"]["Content-Type"]


def test_429_default_fault_matches_the_gateway_capture(stub, api, captures_dir):
    capture = load(captures_dir, "error-429-kong-requests-rate-limit-exceeded")
    stub.queue(Fault(429))
    response = api.post("/chat/completions", json={})
    assert (response.status_code, response.text) == (429, capture["response"]["body"])


def test_models_cards_have_the_2026_fields(api, captures_dir):
    theirs = json.loads(load(captures_dir, "models-list-2026-capabilities")["response"]["body"])
    ours = api.get("/models").json()
    assert set(ours) == set(theirs)
    their_card = theirs["data"][0]
    for card in ours["data"]:
        assert set(card) == set(their_card)
        assert set(card["capabilities"]) == set(their_card["capabilities"])
        assert card["object"] == "model" and card["type"] == "base"
