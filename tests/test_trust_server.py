"""Trust in the sidebar's server (pytest-jupyter, against the stub): the same cost guard as
the kernel faces (a budget refusal and an unconfirmed question send nothing, counted by the
stub; a confirmed one is sent), the reply's provenance as an event and in the history entry
(the SHA-256 of the body the stub received), and the AGENTS.md nearest to the notebook (up
to the server's root) in the system message, with a chip the user can remove."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from mistral_magic.server.events import decode_events
from tests.sidebar_client import StreamedChat, post_tool_result, tool_chat_body
from tests.stub import Reply, StubServer, ToolCallSpec

NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "execution_count": 1,
            "source": "total = 1 + 1",
            "outputs": [],
            "metadata": {},
        }
    ]
}
AGENTS_TEXT = "Use polars, never pandas."


@pytest.fixture
def settings(jp_serverapp: Any) -> Any:
    return jp_serverapp.web_app.settings["mistral_magic_service"].settings


async def _chat(jp_fetch: Any, **fields: Any) -> list[tuple[str, dict[str, Any]]]:
    body = {"prompt": "What does this do?", "notebook": NOTEBOOK, "active_cell": 0}
    body.update(fields)
    response = await jp_fetch("mistral-magic", "chat", method="POST", body=json.dumps(body))
    assert response.code == 200
    return [(n, d) for n, d in decode_events(response.body) if n != "notice"]


def _event(events: list[tuple[str, dict[str, Any]]], name: str) -> dict[str, Any]:
    found = [data for n, data in events if n == name]
    assert found, f"no {name} event in {[n for n, _ in events]}"
    return found[-1]


async def test_a_question_past_the_session_budget_is_refused_and_not_sent(
    lab_stub: StubServer, jp_fetch: Any, settings: Any
) -> None:
    settings.session_budget = 0.000001
    events = await _chat(jp_fetch)
    assert [n for n, _ in events] == ["context", "error", "done"]
    assert _event(events, "error")["type"] == "CostRefused"
    assert "Mistral.session_budget" in _event(events, "error")["message"]
    assert lab_stub.chat_requests == []


async def test_confirm_above_asks_first_and_a_confirmed_question_is_sent(
    lab_stub: StubServer, jp_fetch: Any, settings: Any
) -> None:
    settings.confirm_above = 0.0
    events = await _chat(jp_fetch, remember=False)
    assert [n for n, _ in events] == ["context", "confirm", "done"]
    asked = _event(events, "confirm")
    assert "Mistral.confirm_above" in asked["reason"] and asked["worst_case"] > 0
    assert asked["model"] == "mistral-large-2407" and "the question" in asked["holds"]
    assert lab_stub.chat_requests == []
    lab_stub.queue(Reply(text="```python\nprint(total)\n```"))
    events = await _chat(jp_fetch, remember=False, confirmed=True)
    assert _event(events, "done")["finish_reason"] == "stop"
    assert len(lab_stub.chat_requests) == 1


async def test_the_reply_carries_its_provenance_and_the_history_keeps_it(
    lab_stub: StubServer, jp_fetch: Any
) -> None:
    usage = {"prompt_tokens": 900, "completion_tokens": 100, "total_tokens": 1000}
    lab_stub.queue(Reply(text="Adds one and one.", usage=usage))
    events = await _chat(jp_fetch)
    record = _event(events, "provenance")
    [posted] = lab_stub.chat_requests
    assert record["body_sha256"] == hashlib.sha256(posted.raw).hexdigest()
    assert record["face"] == "sidebar" and record["question"] == "What does this do?"
    assert record["usage"] == {"prompt_tokens": 900, "completion_tokens": 100}
    assert record["cost_usd"] == pytest.approx((900 * 2 + 100 * 6) / 1e6)
    assert lab_stub.api_key not in json.dumps(record)
    response = await jp_fetch("mistral-magic", "history", method="GET")
    entries = json.loads(response.body)["entries"]
    assert entries[-1]["provenance"]["body_sha256"] == record["body_sha256"]


async def test_agents_md_beside_the_notebook_reaches_the_system_message(
    lab_stub: StubServer, jp_fetch: Any, jp_root_dir: Path
) -> None:
    (jp_root_dir / "project").mkdir()
    (jp_root_dir / "project" / "AGENTS.md").write_text(AGENTS_TEXT, encoding="utf-8")
    path = "project/analysis.ipynb"
    events = await _chat(jp_fetch, notebook_path=path, remember=False)
    chips = _event(events, "context")["chips"]
    assert chips[0]["id"] == "instructions" and chips[0]["label"] == "instructions · AGENTS.md"
    system = lab_stub.chat_requests[0].body["messages"][0]["content"]
    assert AGENTS_TEXT in system
    # removed for one question: not sent
    await _chat(jp_fetch, notebook_path=path, remember=False, exclude=["instructions"])
    assert AGENTS_TEXT not in lab_stub.chat_requests[1].body["messages"][0]["content"]
    # a path that climbs out of the root finds nothing above it
    (jp_root_dir.parent / "AGENTS.md").write_text("outside the root", encoding="utf-8")
    await _chat(jp_fetch, notebook_path="../analysis.ipynb", remember=False)
    assert "outside the root" not in lab_stub.chat_requests[2].body["messages"][0]["content"]


async def test_with_tools_the_provenance_names_the_loops_first_request(
    lab_stub: StubServer,
    jp_fetch: Any,
    http_server_client: Any,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
) -> None:
    lab_stub.queue(
        Reply(tool_calls=[ToolCallSpec("describe_variable", {"name": "sales"})]),
        Reply("sales has 3 rows."),
    )
    chat = StreamedChat(
        http_server_client, jp_base_url, jp_auth_header, tool_chat_body("req-trust-tools")
    )
    call = await chat.event("tool_call")
    await post_tool_result(
        jp_fetch, request_id="req-trust-tools", call_id=call["call_id"], status="ok", result="3"
    )
    events = await chat.events()
    record = _event(events, "provenance")
    first, second = lab_stub.chat_requests
    assert record["body_sha256"] == hashlib.sha256(first.raw).hexdigest()
    assert record["body_sha256"] != hashlib.sha256(second.raw).hexdigest()
    assert record["face"] == "sidebar"
    assert _event(events, "done")["finish_reason"] == "stop"


async def test_a_tool_round_past_the_session_budget_is_not_sent(
    lab_stub: StubServer,
    jp_fetch: Any,
    settings: Any,
    http_server_client: Any,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
) -> None:
    # the first request's worst case (2,048 reply tokens) fits; what it used does not leave
    # room for a second one
    settings.session_budget = 0.05
    heavy = {"prompt_tokens": 100_000, "completion_tokens": 10, "total_tokens": 100_010}
    lab_stub.queue(
        Reply(tool_calls=[ToolCallSpec("describe_variable", {"name": "sales"})], usage=heavy),
        Reply("never sent"),
    )
    chat = StreamedChat(
        http_server_client, jp_base_url, jp_auth_header, tool_chat_body("req-budget-tools")
    )
    call = await chat.event("tool_call")
    await post_tool_result(
        jp_fetch, request_id="req-budget-tools", call_id=call["call_id"], status="ok", result="3"
    )
    events = await chat.events()
    error = _event(events, "error")
    assert error["type"] == "CostRefused" and "request 2 of the tool loop" in error["message"]
    assert _event(events, "done")["finish_reason"] == "error"
    assert len(lab_stub.chat_requests) == 1
