"""``{base_url}mistral-magic/complete``: inline completion through the server extension, against
the stub (pytest-jupyter): the route (Codestral FIM, the chat model, off), the exact request,
the streamed insertion, one request per editor, cancellation, redaction, usage, errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tornado.httpclient import HTTPClientError

from mistral_magic.api.dialect import MEMORY
from mistral_magic.engine.inline import CELL_SEPARATOR, CURSOR, THINKING_ROOM
from mistral_magic.engine.prompts import INLINE_SYSTEM
from mistral_magic.server.events import decode_events
from tests.stub import Fault, Reply, StubServer
from tests.stub.models import CODESTRAL_NAMES

SECRET = "sk-inline-secret-0123456789abcdef"
SALES = "sales: pandas DataFrame, 3 rows × 2 columns; columns: region (object), amount (int64)"


@pytest.fixture
def lab_stub(stub_env: StubServer, monkeypatch: pytest.MonkeyPatch) -> StubServer:
    """The stub as the main model server; it serves codestral-latest with FIM."""
    monkeypatch.setenv("MISTRAL_DIALECT", "mistral")
    monkeypatch.delenv("MISTRAL_CODESTRAL_API_KEY", raising=False)
    monkeypatch.delenv("MISTRAL_CODESTRAL_BASE_URL", raising=False)
    assert "codestral-latest" in stub_env.models  # the stub's line-up has Codestral (FIM)
    return stub_env


@pytest.fixture
def codestral() -> Iterator[StubServer]:
    """A second server, Codestral's own, with its own key."""
    with StubServer(api_key="codestral-own-key", models=["codestral-latest"]) as server:
        MEMORY.forget(server.base_url)
        yield server
        MEMORY.forget(server.base_url)


def _body(**fields: Any) -> str:
    payload: dict[str, Any] = {
        "editor": "cell-1",
        "path": "demo.ipynb",
        "before": ["import pandas as pd", "sales = load()"],
        "prefix": "total = sales[",
        "suffix": "]\nprint(total)",
        "after": ["plot(total)"],
        "scope": {
            "names": ["sales · DataFrame 3×2", "pd · module pandas"],
            "frames": {"sales": SALES},
        },
    }
    payload.update(fields)
    return json.dumps(payload)


async def _complete(jp_fetch: Any, **fields: Any) -> list[tuple[str, dict[str, Any]]]:
    response = await jp_fetch("mistral-magic", "complete", method="POST", body=_body(**fields))
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return decode_events(response.body)


def _text(events: list[tuple[str, dict[str, Any]]]) -> str:
    return "".join(data["text"] for name, data in events if name == "delta")


async def _status(jp_fetch: Any) -> dict[str, Any]:
    return json.loads((await jp_fetch("mistral-magic", "complete")).body)


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_requests_without_token_are_refused(lab_stub, jp_fetch, method):
    with pytest.raises(HTTPClientError) as failure:
        await jp_fetch(
            "mistral-magic",
            "complete",
            method=method,
            body=_body() if method == "POST" else None,
            headers={"Authorization": ""},
        )
    assert failure.value.code == 403
    assert lab_stub.fim_requests == [] and lab_stub.chat_requests == []


async def test_a_post_from_a_cookie_session_needs_the_xsrf_token(
    lab_stub, jp_serverapp, jp_base_url, http_server_client
):
    from tornado.httpclient import AsyncHTTPClient

    client = AsyncHTTPClient()
    root = http_server_client.get_url(jp_base_url)
    login = await client.fetch(root + "login", raise_error=False)
    xsrf = next(
        c.split(";")[0].split("=", 1)[1]
        for c in login.headers.get_list("Set-Cookie")
        if c.startswith("_xsrf=")
    )
    response = await client.fetch(
        root + "login",
        method="POST",
        body=f"password={jp_serverapp.identity_provider.token}&_xsrf={xsrf}",
        headers={"Cookie": f"_xsrf={xsrf}"},
        follow_redirects=False,
        raise_error=False,
    )
    cookies = "; ".join(c.split(";")[0] for c in response.headers.get_list("Set-Cookie"))
    cookies += f"; _xsrf={xsrf}"
    url = root + "mistral-magic/complete"
    refused = await client.fetch(
        url, method="POST", body=_body(), headers={"Cookie": cookies}, raise_error=False
    )
    assert refused.code == 403 and lab_stub.fim_requests == []
    lab_stub.queue(Reply("'amount'"))
    accepted = await client.fetch(
        url,
        method="POST",
        body=_body(),
        headers={"Cookie": cookies, "X-XSRFToken": xsrf},
        raise_error=False,
    )
    assert accepted.code == 200 and _text(decode_events(accepted.body)) == "'amount'"


async def test_fim_when_the_model_list_gives_codestral_completion_fim(lab_stub, jp_fetch):
    status = await _status(jp_fetch)
    assert (status["available"], status["mode"], status["model"]) == (
        True,
        "fim",
        "codestral-latest",
    )
    lab_stub.queue(Reply(chunks=["'amo", "unt'"]))
    events = await _complete(jp_fetch)
    assert [n for n, _ in events] == ["delta", "delta", "usage", "done"]
    assert _text(events) == "'amount'"
    sent = lab_stub.fim_requests[-1].body
    assert sent["model"] == "codestral-latest" and sent["stream"] is True
    assert (sent["max_tokens"], sent["temperature"]) == (64, 0.0)
    # the scope leads (the frame the cell names, with its columns), then the earlier cells,
    # then the cell up to the cursor; the suffix is the rest of the cell, then what follows
    assert sent["prompt"] == (
        "# In the running kernel:\n"
        f"# {SALES}\n"
        "# names in scope: pd · module pandas\n\n"
        f"import pandas as pd{CELL_SEPARATOR}sales = load(){CELL_SEPARATOR}total = sales["
    )
    assert sent["suffix"] == f"]\nprint(total){CELL_SEPARATOR}plot(total)"
    usage, done = events[-2][1], events[-1][1]
    assert usage["model"] == "codestral-latest" and usage["completion_tokens"] > 0
    assert usage["session"]["requests"] == 1 and usage["session"]["cost_text"].startswith("$")
    assert done["mode"] == "fim" and done["server_ms"] >= 0
    assert (await _status(jp_fetch))["usage"]["requests"] == 1
    models = [r for r in lab_stub.requests if r.path == "/v1/models"]
    assert len(models) == 1  # once per base URL


async def test_the_chat_model_completes_when_no_model_has_fim(lab_stub, jp_fetch):
    # Codestral by every name: each of its cards lists codestral-latest as an alias.
    lab_stub.models[:] = [m for m in lab_stub.models if m not in CODESTRAL_NAMES]
    status = await _status(jp_fetch)
    assert (status["mode"], status["model"]) == ("chat", "mistral-large-2407")
    lab_stub.queue(Reply(chunks=["```python\n", "total = sales['amount'", "]\n```\nDone."]))
    events = await _complete(jp_fetch, suffix="")
    assert _text(events) == "'amount']"
    sent = lab_stub.chat_requests[-1].body
    assert sent["messages"][0] == {"role": "system", "content": INLINE_SYSTEM}
    question = sent["messages"][1]["content"]
    assert f"total = sales[{CURSOR}" in question and SALES in question
    assert (sent["max_tokens"], sent["temperature"], sent["stream"]) == (64, 0.0, True)
    assert lab_stub.fim_requests == []


async def test_a_reasoning_chat_model_inserts_its_answer_never_its_thinking(
    lab_stub, jp_fetch, monkeypatch
):
    """Magistral as the chat model: asked not to think, with room for one that thinks anyway;
    the insertion is cut from the answer's text, never from thinking chunks (#13)."""
    monkeypatch.setenv("MISTRAL_MODEL", "magistral-medium-latest")
    lab_stub.models[:] = [m for m in lab_stub.models if m not in CODESTRAL_NAMES]
    assert (await _status(jp_fetch))["model"] == "magistral-medium-latest"
    thinking = "The frame has region; maybe total = sales['region'] is meant."
    answer = ["```python\n", "total = sales['amount'", "]\n```"]
    lab_stub.queue(Reply(chunks=answer, thinking=thinking))
    events = await _complete(jp_fetch, suffix="")
    assert _text(events) == "'amount']"
    assert not [data for name, data in events if name == "error"]
    sent = lab_stub.chat_requests[-1].body
    assert sent["reasoning_effort"] == "none"
    assert sent["max_tokens"] == 64 + THINKING_ROOM  # bounded, with room to think


async def test_a_reasoning_model_that_only_thinks_gets_a_status(lab_stub, jp_fetch, monkeypatch):
    monkeypatch.setenv("MISTRAL_MODEL", "magistral-medium-latest")
    lab_stub.models[:] = [m for m in lab_stub.models if m not in CODESTRAL_NAMES]
    # it thinks past the whole bound: no answer text at all
    lab_stub.queue(Reply(text="total = sales['amount']", thinking="hmm " * 2000))
    events = await _complete(jp_fetch, suffix="")
    assert _text(events) == ""  # the thinking is never inserted
    errors = [data for name, data in events if name == "error"]
    assert len(errors) == 1 and errors[0]["type"] == "ThoughtOnly"
    assert "magistral-medium-latest thought before its token bound" in errors[0]["message"]
    assert "Codestral" in errors[0]["message"]
    assert next(data for name, data in events if name == "done")["finish_reason"] == "length"


async def test_a_vllm_server_gets_the_chat_path(lab_stub, jp_fetch, monkeypatch):
    lab_stub.dialect = "vllm"
    monkeypatch.setenv("MISTRAL_DIALECT", "openai")
    assert (await _status(jp_fetch))["mode"] == "chat"
    lab_stub.queue(Reply("'region']"))
    assert _text(await _complete(jp_fetch)) == "'region'"
    assert lab_stub.chat_requests[-1].body["stream_options"] == {"include_usage": True}


async def test_codestral_settings_use_codestral_own_key_and_server(
    lab_stub, codestral, jp_fetch, monkeypatch
):
    monkeypatch.setenv("MISTRAL_CODESTRAL_API_KEY", "codestral-own-key")
    monkeypatch.setenv("MISTRAL_CODESTRAL_BASE_URL", codestral.base_url)
    status = await _status(jp_fetch)
    assert status["mode"] == "fim" and "codestral-own-key" not in json.dumps(status)
    codestral.queue(Reply("'amount'"))
    # a Codestral key pasted into the code is redacted like the main one
    assert _text(await _complete(jp_fetch, prefix="k = 'codestral-own-key'\nx = ")) == "'amount'"
    sent = codestral.fim_requests[-1]
    assert sent.headers["authorization"] == "Bearer codestral-own-key"
    assert "codestral-own-key" not in sent.raw.decode()
    # the main server is neither asked to complete nor for its model list
    assert lab_stub.requests == []


async def test_nothing_configured_means_off(jp_fetch, monkeypatch):
    for name in ("MISTRAL_API_KEY", "MISTRAL_BASE_URL", "MISTRAL_CODESTRAL_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("MISTRAL_CODESTRAL_BASE_URL", raising=False)
    status = await _status(jp_fetch)
    assert (status["available"], status["mode"]) == (False, "off")
    assert "MISTRAL_API_KEY" in status["reason"]
    events = await _complete(jp_fetch)
    assert [n for n, _ in events] == ["error", "done"]


async def test_secrets_in_the_code_are_redacted_before_sending(lab_stub, jp_fetch):
    lab_stub.queue(Reply("x"))
    await _complete(
        jp_fetch,
        before=[f"api = '{SECRET}'"],
        prefix=f"headers = {{'Authorization': 'Bearer {SECRET}'}}\nx = ",
        scope={"names": [f"note · str {SECRET}"], "frames": {}},
    )
    assert SECRET not in lab_stub.fim_requests[-1].raw.decode()


async def test_errors_come_as_one_paragraph_without_the_key(lab_stub, jp_fetch):
    lab_stub.queue(Fault(400, body={"message": f"rejected {lab_stub.api_key}", "code": "1"}))
    events = await _complete(jp_fetch)
    assert [n for n, _ in events] == ["error", "done"]
    message = events[0][1]["message"]
    assert "rejected" in message and lab_stub.api_key not in message
    assert "Traceback" not in message


@pytest.mark.parametrize(
    "fields, error",
    [
        ({"prefix": 3}, "`prefix` must be a string."),
        ({"before": "x"}, "`before` must be a list of cell sources."),
        ({"editor": "a b"}, "`editor` must be 1 to 128"),
    ],
)
async def test_a_bad_body_is_one_sentence(lab_stub, jp_fetch, fields, error):
    with pytest.raises(HTTPClientError) as failure:
        await jp_fetch("mistral-magic", "complete", method="POST", body=_body(**fields))
    assert failure.value.code == 400
    assert error in failure.value.response.body.decode()


async def test_a_body_too_large_is_refused_before_it_is_read(lab_stub, jp_fetch, jp_serverapp):
    huge = "x = 1\n" * 400_000  # 2.4 MB of code: more than a completion ever sends
    with pytest.raises(HTTPClientError) as failure:
        await jp_fetch("mistral-magic", "complete", method="POST", body=_body(before=[huge]))
    assert failure.value.code == 413
    assert "at most 2 MB" in json.loads(failure.value.response.body)["message"]
    # MistralServer.max_request_mb bounds this route too, when it is the smaller (its own
    # message, naming the setting).
    jp_serverapp.web_app.settings["mistral_magic_limits"].max_request_mb = 0.25
    with pytest.raises(HTTPClientError) as failure:
        await jp_fetch(
            "mistral-magic", "complete", method="POST", body=_body(before=[huge[:600_000]])
        )
    assert failure.value.code == 413
    message = json.loads(failure.value.response.body)["message"]
    assert "0.25 MB" in message and "c.MistralServer.max_request_mb" in message
    assert lab_stub.fim_requests == [] and lab_stub.chat_requests == []


async def _open_stream(url: str, headers: dict[str, str], client: httpx.AsyncClient, **fields):
    """Start a completion and return once its first text arrived (the response stays open)."""
    request = client.build_request("POST", url, content=_body(**fields), headers=headers)
    response = await client.send(request, stream=True)
    lines = response.aiter_lines()
    async for line in lines:
        if line.startswith("event: delta"):
            return response
    raise AssertionError("no delta")


async def test_leaving_closes_the_upstream_request(
    lab_stub, http_server_client, jp_base_url, jp_auth_header
):
    # the first text, then a model that stalls for a minute unless it is stopped
    lab_stub.queue(Reply(chunks=["'am", "ou", "nt'"], pause_after_first=60))
    url = http_server_client.get_url(f"{jp_base_url}mistral-magic/complete")
    async with httpx.AsyncClient(timeout=20) as client:
        response = await _open_stream(url, jp_auth_header, client)
        await response.aclose()  # what typing on does in the browser
    left = await asyncio.to_thread(lab_stub.fim_requests[-1].client_left.wait, 10)
    assert left


async def test_a_new_request_for_the_same_editor_cancels_the_running_one(
    lab_stub, jp_fetch, http_server_client, jp_base_url, jp_auth_header
):
    lab_stub.queue(Reply(chunks=["'am", "ou", "nt'"], pause_after_first=60))
    url = http_server_client.get_url(f"{jp_base_url}mistral-magic/complete")
    async with httpx.AsyncClient(timeout=20) as client:
        first = await _open_stream(url, jp_auth_header, client)
        lab_stub.queue(Reply("'region'"))
        events = await _complete(jp_fetch)  # the same editor: cell-1
        assert _text(events) == "'region'"
        left = await asyncio.to_thread(lab_stub.fim_requests[0].client_left.wait, 10)
        assert left
        await first.aclose()


async def test_inline_completions_count_toward_the_session_budget_and_stop_at_it(
    lab_stub, jp_fetch, jp_serverapp
):
    """Ghost text is paid like any request: its usage is in the user's spending, and past
    ``Mistral.session_budget`` nothing is sent (for a completion or a sidebar question)."""
    settings = jp_serverapp.web_app.settings["mistral_magic_service"].settings
    settings.session_budget = 0.25
    # one completion the server says read 1M tokens: $0.30 at Codestral's price
    heavy = {"prompt_tokens": 1_000_000, "completion_tokens": 4, "total_tokens": 1_000_004}
    lab_stub.queue(Reply(chunks=["'amount'"], usage=heavy))
    first = await _complete(jp_fetch)
    assert _text(first) == "'amount'" and len(lab_stub.fim_requests) == 1

    refused = await _complete(jp_fetch)
    assert [n for n, _ in refused] == ["error", "done"]
    error, done = refused[0][1], refused[1][1]
    assert error["type"] == "CostRefused" and "Mistral.session_budget" in error["message"]
    assert "$0.30" in error["message"] and done["finish_reason"] == "refused"
    assert len(lab_stub.fim_requests) == 1  # nothing sent

    question = {"prompt": "What is sales?", "notebook": {"cells": []}}
    response = await jp_fetch("mistral-magic", "chat", method="POST", body=json.dumps(question))
    events = decode_events(response.body)
    assert [n for n, _ in events] == ["context", "error", "done"]
    assert events[1][1]["type"] == "CostRefused" and lab_stub.chat_requests == []


async def test_a_completion_whose_worst_case_passes_the_budget_is_not_sent(
    lab_stub, jp_fetch, jp_serverapp
):
    settings = jp_serverapp.web_app.settings["mistral_magic_service"].settings
    settings.session_budget = 1e-9
    events = await _complete(jp_fetch)
    assert [n for n, _ in events] == ["error", "done"]
    assert events[0][1]["type"] == "CostRefused" and lab_stub.fim_requests == []
