"""The jupyter_server extension's handlers, against the Mistral stub (pytest-jupyter)."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from traitlets import TraitError

from mistral_magic.server.events import decode_events
from mistral_magic.server.history import HistoryStore
from tests.sidebar_client import NOTEBOOK, Received
from tests.stub import Drop, Fault, Reply, StubServer

SECRET_KEY = "sk-server-test-key-0123456789abcdef"


def _body(**fields: Any) -> str:
    payload = {"prompt": "Why does this fail?", "notebook": NOTEBOOK, "active_cell": 2}
    payload.update(fields)
    return json.dumps(payload)


async def _chat(jp_fetch: Any, **fields: Any) -> list[tuple[str, dict[str, Any]]]:
    response = await jp_fetch("mistral-magic", "chat", method="POST", body=_body(**fields))
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return decode_events(response.body)


def _names(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The events' names, without informational notices (mistral-large-2407's deprecation,
    told once per model and user: see test_chat_streams_context_deltas_usage_done)."""
    return [name for name, data in events if not _info(name, data)]


def _info(name: str, data: dict[str, Any]) -> bool:
    return name == "notice" and data.get("kind") == "info"


# ------------------------------------------------------------------ auth, XSRF, config


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "config", None),
        ("GET", "history", None),
        ("DELETE", "history", None),
        ("POST", "chat", _body()),
        ("POST", "context", _body()),
        ("POST", "chat/cancel", "{}"),
    ],
)
async def test_requests_without_token_are_refused(
    lab_stub: StubServer, jp_fetch: Any, method: str, path: str, body: str | None
) -> None:
    with pytest.raises(HTTPClientError) as failure:
        await jp_fetch(
            "mistral-magic",
            *path.split("/"),
            method=method,
            body=body,
            headers={"Authorization": ""},
        )
    assert failure.value.code == 403
    assert lab_stub.chat_requests == []


async def test_post_with_cookie_login_needs_the_xsrf_token(
    lab_stub: StubServer, jp_serverapp: Any, jp_base_url: str, http_server_client: Any
) -> None:
    client = AsyncHTTPClient()
    root = http_server_client.get_url(jp_base_url)
    login = await client.fetch(root + "login", raise_error=False)
    xsrf = _cookie(login.headers.get_list("Set-Cookie"), "_xsrf")
    response = await client.fetch(
        root + "login",
        method="POST",
        body=f"password={jp_serverapp.identity_provider.token}&_xsrf={xsrf}",
        headers={"Cookie": f"_xsrf={xsrf}"},
        follow_redirects=False,
        raise_error=False,
    )
    assert response.code == 302
    cookies = "; ".join(c.split(";")[0] for c in response.headers.get_list("Set-Cookie"))
    cookies += f"; _xsrf={xsrf}"
    url = root + "mistral-magic/chat"
    refused = await client.fetch(
        url, method="POST", body=_body(), headers={"Cookie": cookies}, raise_error=False
    )
    assert refused.code == 403
    assert lab_stub.chat_requests == []
    accepted = await client.fetch(
        url,
        method="POST",
        body=_body(),
        headers={"Cookie": cookies, "X-XSRFToken": xsrf},
        raise_error=False,
    )
    assert accepted.code == 200
    assert "done" in _names(decode_events(accepted.body))
    # No CORS opening: a page on another origin gets no Access-Control-Allow-Origin.
    config = await client.fetch(
        root + "mistral-magic/config",
        headers={"Cookie": cookies, "Origin": "https://evil.example"},
        raise_error=False,
    )
    assert "Access-Control-Allow-Origin" not in config.headers


def _cookie(set_cookies: list[str], name: str) -> str:
    for header in set_cookies:
        key, _, rest = header.partition("=")
        if key.strip() == name:
            return rest.split(";")[0]
    raise AssertionError(f"no {name} cookie in {set_cookies}")


async def test_config_tells_whether_a_key_is_set_but_never_the_key(
    jp_fetch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MISTRAL_API_KEY", SECRET_KEY)
    monkeypatch.setenv("MISTRAL_BASE_URL", "https://user:pw@api.example.com/v1")
    monkeypatch.setenv("MISTRAL_MODEL", "mistral-large-2407")
    response = await jp_fetch("mistral-magic", "config")
    text = response.body.decode()
    config = json.loads(text)
    assert config["api_key_configured"] is True
    assert config["model"] == "mistral-large-2407"
    assert config["server"] == "https://api.example.com"
    assert SECRET_KEY not in text and SECRET_KEY[-6:] not in text and "pw" not in text


async def test_config_without_key(jp_fetch: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    config = json.loads((await jp_fetch("mistral-magic", "config")).body)
    assert config["api_key_configured"] is False


async def test_server_config_file_sets_the_model(
    jp_configurable_serverapp: Any, stub_env: StubServer
) -> None:
    from traitlets.config import Config

    from mistral_magic.server import setup_handlers

    config = Config({"Mistral": {"model": "mistral-small-latest", "temperature": 0.1}})
    app = jp_configurable_serverapp(config=config)
    service = setup_handlers(app)
    assert service.settings.model == "mistral-small-latest"
    assert (await service.public_config())["temperature"] == 0.1


# ------------------------------------------------------------------ streaming


async def test_chat_streams_context_deltas_usage_done(lab_stub: StubServer, jp_fetch: Any) -> None:
    lab_stub.queue(Reply(chunks=["Divide by ", "`len(x)`", " instead."]))
    events = await _chat(jp_fetch)
    names = ["context", "delta", "delta", "delta", "usage", "provenance", "done"]
    assert _names(events) == names, events
    notices = [data["message"] for name, data in events if _info(name, data)]
    assert notices == [
        "mistral-large-2407 was deprecated on 2024-11-30; the server names "
        "mistral-large-latest as its replacement."
    ]
    assert [name for name, _ in events][:2] == ["context", "notice"]  # before the answer
    context, usage = events[0][1], next(data for name, data in events if name == "usage")
    assert context["model"] == "mistral-large-2407"
    assert "".join(d["text"] for n, d in events if n == "delta") == "Divide by `len(x)` instead."
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["cost_text"].startswith("$")
    sent = lab_stub.chat_requests[-1].body
    assert sent["stream"] is True
    system = sent["messages"][0]["content"]
    assert "ZeroDivisionError" in system and "total = revenue / 0" in system
    assert "\x1b[" not in system
    assert sent["messages"][-1] == {"role": "user", "content": "Why does this fail?"}


async def test_chips_name_what_the_model_receives(lab_stub: StubServer, jp_fetch: Any) -> None:
    events = await _chat(jp_fetch)
    chips = events[0][1]["chips"]
    labels = [chip["label"] for chip in chips]
    assert labels == ["active cell [2]", "error in [2]", "notebook · 2 cells"]
    system = lab_stub.chat_requests[-1].body["messages"][0]["content"]
    for chip in chips:
        for item_label in chip["items"]:
            assert f"### {item_label}\n" in system


async def test_context_preview_and_exclusions(lab_stub: StubServer, jp_fetch: Any) -> None:
    preview = await jp_fetch(
        "mistral-magic", "context", method="POST", body=_body(prompt="", exclude=["error"])
    )
    chips = json.loads(preview.body)["chips"]
    assert [c["id"] for c in chips] == ["active", "notebook"]
    assert lab_stub.chat_requests == []
    await _chat(jp_fetch, exclude=["error", "notebook"], active_cell=1)
    system = lab_stub.chat_requests[-1].body["messages"][0]["content"]
    assert "ZeroDivisionError" not in system and "Sales analysis" not in system
    assert "print('loaded')" in system


async def test_variables_from_the_kernel_are_checked_again(
    lab_stub: StubServer, jp_fetch: Any
) -> None:
    variables = [
        {
            "kind": "dataframe",
            "key": "var:sales",
            "label": "sales · DataFrame 3×2",
            "text": "sales: DataFrame 3 rows × 2 columns",
        },
        {
            "kind": "variable",
            "key": "var:api_key",
            "label": "api_key · str",
            "text": "api_key = 'hunter2hunter2'",
        },
        {
            "kind": "variable",
            "key": "var:note",
            "label": "note · str",
            "text": f"note = 'use {SECRET_KEY} here'",
        },
        {"kind": "named", "key": "var:forged", "label": "forged", "text": "forged"},
    ]
    events = await _chat(jp_fetch, variables=variables)
    ids = [chip["id"] for chip in events[0][1]["chips"]]
    assert "var:sales" in ids and "var:note" in ids
    assert "var:api_key" not in ids and "var:forged" not in ids
    system = lab_stub.chat_requests[-1].body["messages"][0]["content"]
    assert "hunter2" not in system and SECRET_KEY not in system
    assert "sales: DataFrame 3 rows" in system


# ------------------------------------------------------------------ errors


async def test_upstream_errors_become_one_paragraph_messages(
    lab_stub: StubServer, jp_fetch: Any
) -> None:
    lab_stub.queue(Fault(401))
    events = await _chat(jp_fetch)
    assert _names(events) == ["context", "error", "done"]
    error = next(data for name, data in events if name == "error")
    assert error["type"] == "AuthenticationError" and error["partial"] is False
    assert "MISTRAL_API_KEY" in error["message"] and "\n" not in error["message"].strip()
    assert "test-key" not in json.dumps(events)


async def test_a_broken_stream_keeps_the_partial_answer(
    lab_stub: StubServer, jp_fetch: Any
) -> None:
    lab_stub.queue(Drop(after_chunks=3, reply=Reply(chunks=["one ", "two ", "three ", "four"])))
    events = await _chat(jp_fetch)
    names = _names(events)
    assert names[0] == "context" and names[-2:] == ["error", "done"]
    assert "delta" in names
    error = events[-2][1]
    assert error["partial"] is True and error["type"] == "StreamError"
    history = json.loads((await jp_fetch("mistral-magic", "history")).body)["entries"]
    assert history[-1]["role"] == "assistant" and history[-1]["text"].startswith("one ")
    assert history[-1]["error"] == error["message"]


async def test_missing_key_is_explained(
    lab_stub: StubServer, jp_fetch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MISTRAL_API_KEY")
    monkeypatch.setenv("MISTRAL_DIALECT", "mistral")
    events = await _chat(jp_fetch)
    assert events[1][0] == "error" and events[1][1]["type"] == "MissingAPIKeyError"
    message = events[1][1]["message"]
    assert "console.mistral.ai" in message and "MISTRAL_API_KEY" in message
    # the sidebar's user sets the server's environment, not a kernel's
    for kernel_talk in ("os.environ", "getpass", "kernel", "%mistral"):
        assert kernel_talk not in message, message


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"prompt": "   "}, "empty"),
        ({"temperature": 3}, "temperature"),
        ({"sources": ["everything"]}, "sources"),
        ({"notebook": {"cells": "no"}}, "notebook"),
        ({"request_id": "../../etc"}, "request_id"),
    ],
)
async def test_bad_requests_get_a_400_with_a_reason(
    lab_stub: StubServer, jp_fetch: Any, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(HTTPClientError) as failure:
        await jp_fetch("mistral-magic", "chat", method="POST", body=_body(**fields))
    assert failure.value.code == 400
    assert message in json.loads(failure.value.response.body)["message"]
    assert lab_stub.chat_requests == []


# ------------------------------------------------------------------ cancel


async def _no_stub_connections(stub: StubServer, timeout: float = 5.0) -> None:
    """Wait until the stub has no open connection (the upstream request was closed)."""
    closed = await asyncio.to_thread(stub.wait_for_connections, lambda n: n == 0, timeout)
    assert closed, f"{stub.open_connections()} connection(s) to the stub still open"


SLOW_REPLY = Reply(chunks=[f"word{i} " for i in range(40)])


async def test_cancel_stops_the_upstream_request(
    lab_stub: StubServer,
    jp_fetch: Any,
    http_server_client: Any,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
) -> None:
    lab_stub.token_delay = 0.1  # 40 chunks: 4 s when not cancelled
    lab_stub.queue(SLOW_REPLY)
    received = Received()
    chat = asyncio.ensure_future(
        http_server_client.fetch(
            f"{jp_base_url}mistral-magic/chat",
            method="POST",
            body=_body(request_id="req-1"),
            headers=jp_auth_header,
            streaming_callback=received,
            request_timeout=20,
        )
    )
    await received.wait_for(b"event: delta")
    cancel = await jp_fetch(
        "mistral-magic", "chat", "cancel", method="POST", body=json.dumps({"request_id": "req-1"})
    )
    assert json.loads(cancel.body) == {"cancelled": True}
    await chat
    events = decode_events(received.body)
    assert "done" not in _names(events) and "usage" not in _names(events)
    await _no_stub_connections(lab_stub)
    assert lab_stub.chat_requests[-1].client_left.is_set()  # stopped before its last chunk
    history = json.loads((await jp_fetch("mistral-magic", "history")).body)["entries"]
    assert history[-1]["stopped"] is True and history[-1]["text"].startswith("word0")


async def test_browser_disconnect_stops_the_upstream_request(
    lab_stub: StubServer,
    jp_fetch: Any,
    http_server_client: Any,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
) -> None:
    import httpx

    lab_stub.token_delay = 0.1
    lab_stub.queue(SLOW_REPLY)
    url = http_server_client.get_url(f"{jp_base_url}mistral-magic/chat")
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("POST", url, content=_body(), headers=jp_auth_header) as response,
    ):
        async for line in response.aiter_lines():
            if line.startswith("event: delta"):
                break
    await _no_stub_connections(lab_stub)
    assert lab_stub.chat_requests[-1].client_left.is_set()

    for _ in range(100):
        history = json.loads((await jp_fetch("mistral-magic", "history")).body)["entries"]
        if history:
            break
        await asyncio.sleep(0.05)
    assert history[-1].get("stopped") is True and history[-1]["text"].startswith("word0")


# ------------------------------------------------------------------ history


async def test_history_is_kept_sent_back_and_cleared(
    lab_stub: StubServer, jp_fetch: Any, jp_serverapp: Any
) -> None:
    lab_stub.queue(Reply("First answer."), Reply("Second answer."))
    await _chat(jp_fetch, prompt="First question?")
    await _chat(jp_fetch, prompt="Second question?")
    messages = lab_stub.chat_requests[-1].body["messages"]
    assert [m["content"] for m in messages[1:]] == [
        "First question?",
        "First answer.",
        "Second question?",
    ]
    entries = json.loads((await jp_fetch("mistral-magic", "history")).body)["entries"]
    assert [(e["role"], e["text"]) for e in entries] == [
        ("user", "First question?"),
        ("assistant", "First answer."),
        ("user", "Second question?"),
        ("assistant", "Second answer."),
    ]
    assert entries[1]["usage"]["completion_tokens"] > 0
    assert "active cell [2]" in entries[0]["chips"]

    # A new store on the same directory (a server restart) sees the same history.
    store = jp_serverapp.web_app.settings["mistral_magic_history"]
    reloaded = HistoryStore(store.directory)
    user = next(iter(store._cache))
    assert reloaded.load(user) == store.load(user)

    response = await jp_fetch("mistral-magic", "history", method="DELETE")
    assert response.code == 204
    assert json.loads((await jp_fetch("mistral-magic", "history")).body)["entries"] == []
    assert HistoryStore(store.directory).load(user) == []


async def test_remember_false_keeps_the_question_out_of_history(
    lab_stub: StubServer, jp_fetch: Any
) -> None:
    await _chat(jp_fetch, remember=False)
    assert json.loads((await jp_fetch("mistral-magic", "history")).body)["entries"] == []


def test_history_is_bounded(tmp_path: Any) -> None:
    store = HistoryStore(tmp_path, max_entries=4, max_chars=10)
    for i in range(5):
        store.append(
            "alice", {"role": "user", "text": f"q{i}"}, {"role": "assistant", "text": "x" * 20}
        )
    entries = HistoryStore(tmp_path).load("alice")
    assert len(entries) == 4 and entries[0]["text"] == "q3"
    assert entries[1]["text"].startswith("x" * 10) and "clipped" in entries[1]["text"]
    assert HistoryStore(tmp_path).load("bob") == []


async def test_new_chat_while_an_answer_streams_cancels_and_forgets_it(
    lab_stub: StubServer,
    jp_fetch: Any,
    http_server_client: Any,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
) -> None:
    lab_stub.queue(Reply("Kept before."))
    await _chat(jp_fetch, prompt="An earlier question?")
    lab_stub.token_delay = 0.1  # 40 chunks: 4 s when not cancelled
    lab_stub.queue(SLOW_REPLY)
    received = Received()
    chat = asyncio.ensure_future(
        http_server_client.fetch(
            f"{jp_base_url}mistral-magic/chat",
            method="POST",
            body=_body(prompt="A question being answered?", request_id="req-new-chat"),
            headers=jp_auth_header,
            streaming_callback=received,
            request_timeout=20,
        )
    )
    await received.wait_for(b"event: delta")
    # New chat: one DELETE, nothing else (no chat/cancel, the connection stays open)
    response = await jp_fetch("mistral-magic", "history", method="DELETE")
    assert response.code == 204
    await chat
    await _no_stub_connections(lab_stub)
    assert lab_stub.chat_requests[-1].client_left.is_set(), "the answer was not cancelled"
    assert json.loads((await jp_fetch("mistral-magic", "history")).body)["entries"] == []

    lab_stub.token_delay = 0.0
    lab_stub.queue(Reply("Fresh."))
    await _chat(jp_fetch, prompt="A new question?")
    messages = lab_stub.chat_requests[-1].body["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]
    entries = json.loads((await jp_fetch("mistral-magic", "history")).body)["entries"]
    assert [e["text"] for e in entries] == ["A new question?", "Fresh."]


def test_an_exchange_of_a_cleared_generation_is_not_written(tmp_path: Any) -> None:
    store = HistoryStore(tmp_path)
    asked_in = store.generation("alice")
    store.clear("alice")
    assert not store.append("alice", {"role": "user", "text": "old"}, generation=asked_in)
    assert HistoryStore(tmp_path).load("alice") == []
    assert store.append(
        "alice", {"role": "user", "text": "new"}, generation=store.generation("alice")
    )
    assert [e["text"] for e in HistoryStore(tmp_path).load("alice")] == ["new"]


# ------------------------------------------------------------------ bounds


async def _raw_post(url: str, headers: dict[str, str], body: bytes, length: int) -> bytes:
    """POST announcing ``length`` bytes but sending only ``body``; returns what the server
    answers before the rest would have been sent."""
    parts = urllib.parse.urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        lines = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.netloc}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines += ["Content-Type: application/json", f"Content-Length: {length}", "", ""]
        writer.write("\r\n".join(lines).encode() + body)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), timeout=10)
    finally:
        writer.close()


async def test_a_body_over_the_limit_is_refused_before_it_is_read(
    lab_stub: StubServer, http_server_client: Any, jp_base_url: str, jp_auth_header: dict[str, str]
) -> None:
    url = http_server_client.get_url(f"{jp_base_url}mistral-magic/chat")
    answer = await _raw_post(url, jp_auth_header, b'{"prompt": "', 200 * 1024 * 1024)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    message = json.loads(body)["message"]
    assert "200.0 MB" in message and "c.MistralServer.max_request_mb" in message
    assert lab_stub.chat_requests == []


async def test_the_body_limit_is_a_setting(
    lab_stub: StubServer, jp_fetch: Any, jp_serverapp: Any
) -> None:
    from mistral_magic.server.settings import MistralServer

    assert 1 <= MistralServer().max_request_mb <= 64  # sane default
    limits = jp_serverapp.web_app.settings["mistral_magic_limits"]
    limits.max_request_mb = 0.5
    big = {"cells": [{"cell_type": "code", "source": "x = 1\n" * 100_000, "outputs": []}]}
    for route in ("chat", "context"):
        with pytest.raises(HTTPClientError) as failure:
            await jp_fetch("mistral-magic", route, method="POST", body=_body(notebook=big))
        assert failure.value.code == 413
        assert "0.5 MB" in json.loads(failure.value.response.body)["message"]
    events = await _chat(jp_fetch)  # a normal question still fits
    assert "done" in _names(events)
    with pytest.raises(TraitError):
        limits.max_request_mb = 0


async def test_a_long_selection_is_clipped_and_its_chip_says_so(
    lab_stub: StubServer, jp_fetch: Any
) -> None:
    selection = "".join(f"row_{i} = {i}\n" for i in range(12_000))  # ~150,000 characters
    assert len(selection) > 100_000
    preview = await jp_fetch(
        "mistral-magic",
        "context",
        method="POST",
        body=_body(prompt="", active_cell=1, selection=selection),
    )
    chips = {c["id"]: c for c in json.loads(preview.body)["chips"]}
    assert chips["selection"]["note"] == f"first 4,000 of {len(selection):,} characters"
    events = await _chat(jp_fetch, active_cell=1, selection=selection)
    assert "done" in _names(events)
    system = lab_stub.chat_requests[-1].body["messages"][0]["content"]
    assert "row_0 = 0" in system and "row_11999" not in system
    # a browser that clipped the selection itself tells the whole length
    preview = await jp_fetch(
        "mistral-magic",
        "context",
        method="POST",
        body=_body(prompt="", active_cell=1, selection=selection[:5000], selection_chars=900_000),
    )
    chips = {c["id"]: c for c in json.loads(preview.body)["chips"]}
    assert chips["selection"]["note"] == "first 4,000 of 900,000 characters"


# ------------------------------------------------------------------ messages


async def test_an_unknown_model_from_the_settings_editor_names_the_settings_editor(
    lab_stub: StubServer, jp_fetch: Any
) -> None:
    events = await _chat(jp_fetch, model="mistral-nonexistent-2501")
    error = dict(events)["error"]
    assert error["type"] == "ModelNotFoundError"
    message = error["message"]
    assert "mistral-nonexistent-2501" in message and "Settings Editor" in message
    for kernel_talk in ("--model", "%mistral", "os.environ", "kernel"):
        assert kernel_talk not in message, message


# ------------------------------------------------------------------ today's models


def _figure_notebook() -> dict[str, Any]:
    import base64
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 200)).save(out, format="PNG")
    cell = {
        "cell_type": "code",
        "execution_count": 3,
        "source": "plt.hist(ages)\nplt.title('Ages')",
        "outputs": [
            {
                "output_type": "display_data",
                "data": {
                    "image/png": base64.b64encode(out.getvalue()).decode(),
                    "text/plain": "<Figure size 640x480 with 1 Axes>",
                },
                "metadata": {},
            }
        ],
        "metadata": {},
    }
    return {"cells": [*NOTEBOOK["cells"], cell]}


async def test_thinking_streams_apart_and_stays_out_of_the_conversation(
    lab_stub: StubServer, jp_fetch: Any
) -> None:
    lab_stub.queue(Reply("The answer is 144.", thinking="12 * 12 = 144, surely."))
    events = await _chat(jp_fetch, model="magistral-medium-latest", prompt="12 * 12?")
    thinking = "".join(d["text"] for n, d in events if n == "thinking")
    text = "".join(d["text"] for n, d in events if n == "delta")
    assert (thinking, text) == ("12 * 12 = 144, surely.", "The answer is 144.")
    names = _names(events)
    assert names.index("thinking") < names.index("delta")
    history = json.loads((await jp_fetch("mistral-magic", "history")).body)["entries"]
    assert history[-1]["text"] == "The answer is 144."
    assert history[-1]["thinking"] == "12 * 12 = 144, surely."
    lab_stub.queue(Reply("169."))
    await _chat(jp_fetch, model="magistral-medium-latest", prompt="And 13 * 13?")
    sent = json.dumps(lab_stub.chat_requests[-1].body["messages"])
    assert "The answer is 144." in sent and "surely" not in sent


async def test_the_active_cells_figure_goes_to_a_vision_model_only(
    lab_stub: StubServer, jp_fetch: Any
) -> None:
    notebook = _figure_notebook()
    await _chat(jp_fetch, notebook=notebook, active_cell=3, model="pixtral-12b-2409")
    content = lab_stub.chat_requests[-1].body["messages"][-1]["content"]
    assert [c["type"] for c in content] == ["text", "image_url"]
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,iVBOR")
    # the chip off: no figure
    await _chat(
        jp_fetch, notebook=notebook, active_cell=3, model="pixtral-12b-2409", exclude=["active"]
    )
    assert isinstance(lab_stub.chat_requests[-1].body["messages"][-1]["content"], str)
    # a model without vision: words, and the user is told
    events = await _chat(jp_fetch, notebook=notebook, active_cell=3)
    sent = lab_stub.chat_requests[-1].body["messages"]
    assert isinstance(sent[-1]["content"], str) and "base64" not in json.dumps(sent)
    assert "titled 'Ages'" in sent[0]["content"]
    told = [d["message"] for n, d in events if _info(n, d)]
    assert any("a model with vision would see the figure itself" in m for m in told)
