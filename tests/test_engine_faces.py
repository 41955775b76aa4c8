"""Every face builds its request with the engine's one ``prepare``: the magic, the chat panel,
the error buttons and ``%mistral explain``, ``apply``, the sidebar server. Checked through
what the stub received, in a real kernel (and a real Jupyter server for the sidebar); plus
``--dry-run -o req`` equal to the body then POSTed, in both dialects.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from mistral_magic.engine.prompts import SYSTEM_PROMPT, error_question
from tests.kernel import Kernel, stub_kernel
from tests.stub import Reply, StubServer

SETUP = (
    "%load_ext mistral_magic\n"
    "%config Mistral.max_retries = 0\n"
    "import json, mistral_magic, pandas as pd\n"
    "sales = pd.DataFrame({'region': ['north', 'south'], 'revenue': [1.5, 2.5]})\n"
)


@pytest.fixture(scope="module")
def stub():
    with StubServer() as server:
        yield server


@pytest.fixture(scope="module")
def kernel(stub):
    with stub_kernel(stub, SETUP) as k:
        yield k


@pytest.fixture
def fresh(stub, kernel):
    stub.reset()
    assert kernel.execute("%mistral reset").status == "ok"


def ok(kernel: Kernel, code: str) -> Any:
    run = kernel.execute(code, timeout=60)
    assert run.status == "ok", run.reply
    return run


def system_of(body: dict[str, Any]) -> str:
    first = body["messages"][0]
    assert first["role"] == "system"
    return first["content"]


# ------------------------------------------------------------------ one prepare, every face


def test_the_magic_and_the_chat_panel_send_the_same_system_prompt(stub, kernel, fresh):
    ok(kernel, "%%mistral --no-insert --new\nWhich region sold most?")
    # the panel's send is the running cell, so both see the same notebook
    ok(kernel, "assert mistral_magic.chat().send('Which region sold most?').wait(30)")
    magic, panel = (r.body for r in stub.chat_requests)
    assert system_of(magic).startswith(SYSTEM_PROMPT + "\n\nNotebook context")
    assert "sales" in system_of(magic)
    assert system_of(panel) == system_of(magic)
    assert panel["messages"][-1] == magic["messages"][-1]


def test_explain_by_button_and_by_magic_send_the_same_request(stub, kernel, fresh):
    # defined first, so both requests see the same notebook
    ok(
        kernel,
        "def click_explain():\n"
        "    from mistral_magic.faces.error_buttons import ErrorHelp\n"
        "    from mistral_magic.session import session_for\n"
        "    session = session_for(get_ipython())\n"
        "    view = ErrorHelp(session, session.errors.find())\n"
        "    view.explain_button.click()\n"
        "    return view.wait(30)\n",
    )
    failing = kernel.execute("values = [1, 2]\nvalues[5]")
    assert failing.status == "error"
    count = failing.reply["execution_count"]
    ok(kernel, "%mistral explain")
    ok(kernel, "assert click_explain()")
    by_magic, by_button = (r.body for r in stub.chat_requests)
    assert system_of(by_magic).startswith(SYSTEM_PROMPT + "\n\nNotebook context")
    assert "values[5]" in system_of(by_magic)
    assert by_magic["messages"][-1]["content"] == error_question("explain", count)
    # the button's turn comes after the magic's (one conversation); the request is the same
    assert system_of(by_button) == system_of(by_magic)
    assert by_button["messages"][-1] == by_magic["messages"][-1]


def test_apply_rows_are_built_by_the_engine(stub, kernel, fresh):
    stub.responder = lambda body: Reply(text="fine")
    ok(
        kernel,
        "out = mistral_magic.apply(['a', 'b'], 'Rate: {}', system='Be terse.', cache=False,"
        " progress=False, seed=3)",
    )
    sent = sorted((r.body for r in stub.chat_requests), key=lambda b: b["messages"][-1]["content"])
    built = ok(
        kernel,
        "from mistral_magic.engine.prepare import WireTarget, prepare\n"
        "from mistral_magic.session import session_for\n"
        "s = session_for(get_ipython()).settings\n"
        "target = WireTarget(s.base_url.rstrip('/'), 'mistral')\n"
        "print(json.dumps([prepare(f'Rate: {x}', model=s.model, target=target,"
        " params={'temperature': 0.0, 'max_tokens': s.max_tokens, 'random_seed': 3},"
        " defaults=False, system='Be terse.', stream=False).body for x in 'ab']))",
    )
    assert sent == json.loads(built.stdout)
    assert sent[0]["messages"][0] == {"role": "system", "content": "Be terse."}


# ------------------------------------------------------------------ the dry run is the wire


@pytest.mark.parametrize(
    ("stub_dialect", "kernel_dialect"), [("mistral", "mistral"), ("vllm", "openai")]
)
def test_dry_run_body_is_what_is_posted_next(stub_dialect, kernel_dialect):
    with (
        StubServer(dialect=stub_dialect) as server,
        stub_kernel(server, SETUP, MISTRAL_DIALECT=kernel_dialect) as k,
    ):
        k.execute("values = [1, 2]\nvalues[5]")
        options = (
            "--context cells,error --seed 7 --tools notebook --tool-choice get_last_error "
            "--max-tokens 64 --no-insert"
        )
        dry = ok(k, f"%%mistral --dry-run -o req {options}\nWhat went wrong?")
        assert server.chat_requests == []
        assert "POSTed" in dry.markdown[0]
        # sent right after (a cell reading `req` first would be context of its own)
        ok(k, f"%%mistral {options}\nWhat went wrong?")
        posted = server.chat_requests[0].body
        req = json.loads(ok(k, "print(json.dumps(req))").stdout)
    assert posted == req
    wrapped = {"type": "function", "function": {"name": "get_last_error"}}
    assert req["tool_choice"] == wrapped
    if kernel_dialect == "openai":
        assert req["seed"] == 7 and "random_seed" not in req
        assert req["stream_options"] == {"include_usage": True}
    else:
        assert req["random_seed"] == 7 and "seed" not in req


# ------------------------------------------------------------------ the sidebar's server

NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "execution_count": 3,
            "source": "values = [1, 2]\nvalues[5]",
            "outputs": [
                {
                    "output_type": "error",
                    "ename": "IndexError",
                    "evalue": "list index out of range",
                    "traceback": ["IndexError: list index out of range"],
                }
            ],
            "metadata": {},
        }
    ]
}


@pytest.fixture
def sidebar_stub(stub: StubServer, monkeypatch: pytest.MonkeyPatch) -> StubServer:
    """The stub as the sidebar's model (set before the server extension reads settings)."""
    stub.reset()
    for name, value in {
        "MISTRAL_API_KEY": stub.api_key or "",
        "MISTRAL_BASE_URL": stub.base_url,
        "MISTRAL_MODEL": "mistral-large-2407",
        "MISTRAL_DIALECT": "mistral",
    }.items():
        monkeypatch.setenv(name, value)
    return stub


async def _ask_sidebar(jp_fetch: Any, **fields: Any) -> None:
    body = {"notebook": NOTEBOOK, "active_cell": 0, "sources": ["cells", "active", "error"]}
    body.update(fields)
    response = await jp_fetch("mistral-magic", "chat", method="POST", body=json.dumps(body))
    assert response.code == 200


async def test_the_sidebar_sends_the_engines_system_prompt_and_words_explain_itself(
    sidebar_stub: StubServer, jp_fetch: Any
) -> None:
    await _ask_sidebar(jp_fetch, prompt="Why does this fail?", remember=False)
    await _ask_sidebar(jp_fetch, kind="explain", error_cell=0, remember=False)
    await _ask_sidebar(jp_fetch, kind="fix", prompt="ignored words", error_cell=0, remember=False)
    ask, explain, fix = (r.body for r in sidebar_stub.chat_requests)
    for body in (ask, explain, fix):
        assert system_of(body).startswith(SYSTEM_PROMPT + "\n\nNotebook context")
        assert "IndexError" in system_of(body)
    assert ask["messages"][-1]["content"] == "Why does this fail?"
    assert explain["messages"][-1]["content"] == error_question("explain", 3)
    assert fix["messages"][-1]["content"] == error_question("fix", 3)


async def test_the_sidebar_refuses_an_unknown_kind(sidebar_stub: StubServer, jp_fetch: Any) -> None:
    from tornado.httpclient import HTTPClientError

    with pytest.raises(HTTPClientError) as refused:
        await _ask_sidebar(jp_fetch, kind="jailbreak", prompt="x")
    assert refused.value.code == 400
    assert sidebar_stub.chat_requests == []


async def test_a_malformed_base_url_is_an_error_event_not_a_server_error(
    sidebar_stub: StubServer, jp_fetch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mistral_magic.server.events import decode_events

    monkeypatch.setenv("MISTRAL_BASE_URL", "localhost:8000/v1")  # no scheme
    body = {"prompt": "Hi", "notebook": NOTEBOOK, "remember": False}
    response = await jp_fetch("mistral-magic", "chat", method="POST", body=json.dumps(body))
    events = decode_events(response.body)
    assert [name for name, _ in events][-2:] == ["error", "done"]
    assert "localhost:8000" in events[-2][1]["message"]
    assert sidebar_stub.chat_requests == []
