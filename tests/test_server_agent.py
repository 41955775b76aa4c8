"""Agent mode through the server extension (pytest-jupyter, the stub as the model, this test
playing the browser): the agent's tools and prompt come from Python, calls go to the
``agent`` runner, run results are read as the model reads them, and the task's bounds end it
with a message and no further model request."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from mistral_magic.engine.prompts import AGENT_PROMPT
from mistral_magic.server.events import decode_events
from mistral_magic.tools.agent import AGENT_TOOL_NAMES, agent_result_text
from tests.sidebar_client import DESCRIBE, NOTEBOOK, StreamedChat, post_tool_result
from tests.stub import Reply, StubServer, ToolCallSpec

PLAN = "1. Insert a cell that computes the total.\n2. Run it."


@pytest.fixture
def limits(jp_serverapp: Any) -> Any:
    return jp_serverapp.web_app.settings["mistral_magic_limits"]


def _agent_body(request_id: str, **fields: Any) -> str:
    payload = {
        "prompt": "Compute the total of sales.amount",
        "notebook": NOTEBOOK,
        "request_id": request_id,
        "mode": "agent",
        "tools": [DESCRIBE],
    }
    payload.update(fields)
    return json.dumps(payload)


def _names(body: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in body.get("tools") or []]


async def test_an_agent_task_inserts_runs_and_reads_the_error_then_answers(
    lab_stub: StubServer,
    jp_fetch: Any,
    http_server_client: Any,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
) -> None:
    lab_stub.queue(
        Reply(PLAN, tool_calls=[ToolCallSpec("insert_cell", {"index": 2, "source": "1/0"})]),
        Reply(tool_calls=[ToolCallSpec("run_cell", {"index": 2})]),
        Reply("The cell divides by zero; I stopped there."),
    )
    chat = StreamedChat(http_server_client, jp_base_url, jp_auth_header, _agent_body("task-1"))
    insert = await chat.event("tool_call")
    assert insert["runner"] == "agent" and insert["name"] == "insert_cell"
    assert insert["arguments"] == {"index": 2, "source": "1/0"}
    first = lab_stub.chat_requests[0].body
    # the agent's prompt and tools come from Python; the kernel's tools stay offered
    assert first["messages"][0]["content"].startswith(AGENT_PROMPT)
    assert set(AGENT_TOOL_NAMES) | {"describe_variable"} == set(_names(first))
    insert_schema = next(t for t in first["tools"] if t["function"]["name"] == "insert_cell")
    assert insert_schema["function"]["parameters"]["required"] == ["index", "source"]
    progress = await chat.event("agent")
    assert progress["requests"] == 1 and progress["prompt_tokens"] > 0
    await post_tool_result(
        jp_fetch, request_id="task-1", call_id=insert["call_id"], status="ok", result="Inserted."
    )
    run = await chat.event("tool_call", 2)
    assert run["name"] == "run_cell"
    key = lab_stub.api_key
    report = {
        "index": 2,
        "execution_count": 3,
        "status": "error",
        "outputs": [
            {"output_type": "stream", "name": "stdout", "text": f"key={key}\n"},
            {
                "output_type": "error",
                "ename": "ZeroDivisionError",
                "evalue": "division by zero",
                "traceback": ["\x1b[0;31mZeroDivisionError\x1b[0m: division by zero"],
            },
            {"output_type": "display_data", "data": {"image/png": "iVBOR" * 10}},
        ],
    }
    await post_tool_result(
        jp_fetch,
        request_id="task-1",
        call_id=run["call_id"],
        status="ok",
        result=json.dumps(report),
    )
    events = await chat.events()
    assert [n for n, _ in events][-1] == "done"
    tool_message = lab_stub.chat_requests[-1].body["messages"][-1]
    content = tool_message["content"]
    assert content.startswith("Cell 2 (In[3]) raised an error.")
    assert "ZeroDivisionError: division by zero" in content and "\x1b" not in content
    assert "[image/png image, 50 bytes: not shown]" in content
    assert key not in content and key not in json.dumps(events)
    totals = [d for n, d in events if n == "agent"][-1]
    assert totals["requests"] == 3 and totals["step"] == 2
    assert totals["cost_text"] and totals["max_steps"] == 25
    assert len(lab_stub.chat_requests) == 3
    # the history keeps the task's totals under its request id (a page reload shows them)
    response = await jp_fetch("mistral-magic", "history")
    entry = json.loads(response.body)["entries"][-1]
    assert entry["agent"]["request_id"] == "task-1" and entry["agent"]["step"] == 2


async def test_the_step_bound_ends_the_task_with_a_message_and_no_further_request(
    lab_stub: StubServer,
    limits: Any,
    jp_fetch: Any,
    http_server_client: Any,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
) -> None:
    limits.agent_max_steps = 1
    lab_stub.queue(
        Reply(PLAN, tool_calls=[ToolCallSpec("list_cells", {})]),
        Reply(tool_calls=[ToolCallSpec("run_cell", {"index": 0})]),
    )
    chat = StreamedChat(http_server_client, jp_base_url, jp_auth_header, _agent_body("task-steps"))
    call = await chat.event("tool_call")
    await post_tool_result(
        jp_fetch, request_id="task-steps", call_id=call["call_id"], status="ok", result="2 cells"
    )
    events = await chat.events()
    notice = next(d for n, d in events if n == "notice" and d["kind"] == "agent")
    assert "MistralServer.agent_max_steps" in notice["message"]
    assert [d for n, d in events if n == "done"] == [{"finish_reason": "bound"}]
    assert len([n for n, _ in events if n == "tool_call"]) == 1  # run_cell never relayed
    assert len(lab_stub.chat_requests) == 2


async def test_a_page_that_leaves_while_a_call_waits_ends_the_task_at_once(
    lab_stub: StubServer,
    limits: Any,
    jp_fetch: Any,
    jp_serverapp: Any,
    http_server_client: Any,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
) -> None:
    """The page drives the task: when it leaves (a reload) while a relayed call waits for
    its result (an approval card), the task ends then, not at MistralServer.
    agent_max_seconds: nothing left waiting, no further model request, the stopped
    exchange in the history for the reloaded page."""
    import httpx

    assert limits.agent_max_seconds >= 60  # "at once" is far below the task's time bound
    service = jp_serverapp.web_app.settings["mistral_magic_service"]
    lab_stub.queue(Reply(PLAN, tool_calls=[ToolCallSpec("run_cell", {"index": 0})]))
    url = http_server_client.get_url(f"{jp_base_url}mistral-magic/chat")
    body = _agent_body("task-left")
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("POST", url, content=body, headers=jp_auth_header) as response,
    ):
        async for line in response.aiter_lines():
            if line.startswith("event: tool_call"):
                break
        task = next(t for (_, rid), t in service.running.items() if rid == "task-left")
        assert len(service.pending) == 1  # the run waits for the browser
    finished, _ = await asyncio.wait({task}, timeout=5)
    assert task in finished
    assert len(service.pending) == 0 and not service.running
    assert len(lab_stub.chat_requests) == 1
    entry = json.loads((await jp_fetch("mistral-magic", "history")).body)["entries"][-1]
    assert entry["stopped"] is True and entry["text"] == PLAN
    assert entry["agent"]["request_id"] == "task-left"


async def test_the_cost_bound_ends_the_task_before_the_next_request(
    lab_stub: StubServer,
    limits: Any,
    jp_fetch: Any,
    http_server_client: Any,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
) -> None:
    limits.agent_max_cost = 1e-9
    lab_stub.queue(Reply(PLAN, tool_calls=[ToolCallSpec("list_cells", {})]))
    chat = StreamedChat(http_server_client, jp_base_url, jp_auth_header, _agent_body("task-cost"))
    call = await chat.event("tool_call")
    await post_tool_result(
        jp_fetch, request_id="task-cost", call_id=call["call_id"], status="ok", result="2 cells"
    )
    events = await chat.events()
    notice = next(d for n, d in events if n == "notice" and d["kind"] == "agent")
    assert "MistralServer.agent_max_cost" in notice["message"]
    assert len(lab_stub.chat_requests) == 1


async def test_an_agent_step_past_the_session_budget_is_refused_and_its_rounds_counted(
    lab_stub: StubServer,
    jp_serverapp: Any,
    jp_fetch: Any,
    http_server_client: Any,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
) -> None:
    """Mistral.session_budget binds Agent mode as every face: the first request is checked
    before it is sent, each further step's request too; a refused step sends nothing, says
    why, and what the task used is the user's spending (a later question is refused)."""
    settings = jp_serverapp.web_app.settings["mistral_magic_service"].settings
    settings.session_budget = 0.05
    # the first request's worst case fits; what it used ($0.20) leaves no room for a second
    heavy = {"prompt_tokens": 100_000, "completion_tokens": 10, "total_tokens": 100_010}
    lab_stub.queue(
        Reply(PLAN, tool_calls=[ToolCallSpec("list_cells", {})], usage=heavy),
        Reply("never sent"),
    )
    chat = StreamedChat(http_server_client, jp_base_url, jp_auth_header, _agent_body("task-budget"))
    call = await chat.event("tool_call")
    await post_tool_result(
        jp_fetch, request_id="task-budget", call_id=call["call_id"], status="ok", result="2 cells"
    )
    events = await chat.events()
    error = next(d for n, d in events if n == "error")
    assert error["type"] == "CostRefused"
    assert "Stopped before request 2 of the agent task" in error["message"]
    assert "Mistral.session_budget" in error["message"]
    assert [d for n, d in events if n == "done"] == [{"finish_reason": "error"}]
    assert [d for n, d in events if n == "usage"][-1]["prompt_tokens"] == 100_000
    assert len(lab_stub.chat_requests) == 1

    again = StreamedChat(http_server_client, jp_base_url, jp_auth_header, _agent_body("task-after"))
    later = await again.events()
    refusal = next(d for n, d in later if n == "error")
    assert refusal["type"] == "CostRefused" and "has spent $0.20" in refusal["message"]
    assert len(lab_stub.chat_requests) == 1


async def test_arguments_that_do_not_fit_an_agent_tool_are_refused_before_the_browser(
    lab_stub: StubServer,
    http_server_client: Any,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
) -> None:
    lab_stub.queue(
        Reply(PLAN, tool_calls=[ToolCallSpec("run_cell", {"index": "first"})]),
        Reply("I will stop."),
    )
    chat = StreamedChat(http_server_client, jp_base_url, jp_auth_header, _agent_body("task-args"))
    events = await chat.events()
    assert "tool_call" not in [n for n, _ in events]
    result = next(d for n, d in events if n == "tool_result")
    assert result["status"] == "error" and "invalid arguments for run_cell" in result["result"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mode": "auto"}, "`mode` must be one of ask, agent"),
        ({"kind": "fix", "prompt": ""}, "Agent mode takes a task"),
        ({"prompt": "  "}, "The task is empty"),
    ],
)
async def test_a_bad_agent_request_is_refused(
    lab_stub: StubServer, jp_fetch: Any, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(HTTPClientError) as raised:
        await jp_fetch("mistral-magic", "chat", method="POST", body=_agent_body("bad", **fields))
    assert raised.value.code == 400
    assert message in raised.value.response.body.decode()


def test_run_results_are_summarised_and_other_results_pass_through() -> None:
    many = {
        "index": 0,
        "execution_count": None,
        "status": "ok",
        "outputs": [{"output_type": "stream", "name": "stdout", "text": "x" * 50_000}] * 30,
    }
    text = agent_result_text("get_cell_output", json.dumps(many))
    assert text.startswith("Cell 0 outputs:") and "[10 more outputs not shown]" in text
    assert len(text) < 20 * 2_200
    assert agent_result_text("insert_cell", "Inserted cell 3.") == "Inserted cell 3."
    assert agent_result_text("run_cell", "rejected by the user") == "rejected by the user"
    assert decode_events(b"") == []
