"""The api as the sidebar meets it (through the jupyter_server extension, against the stub):
the dialect in effect and why in `config`, rate-limit waits as `notice` events, hints about
the server's environment instead of a kernel's."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mistral_magic.server.events import decode_events
from tests.stub import Fault, Reply, StubServer


@pytest.fixture
def server_stub(stub_env: StubServer, monkeypatch: pytest.MonkeyPatch) -> StubServer:
    monkeypatch.delenv("MISTRAL_DIALECT", raising=False)  # the server says what it speaks
    return stub_env


async def _chat(jp_fetch: Any) -> list[tuple[str, dict[str, Any]]]:
    body = json.dumps({"prompt": "Hello?", "notebook": {"cells": []}})
    response = await jp_fetch("mistral-magic", "chat", method="POST", body=body)
    return decode_events(response.body)


async def test_config_shows_the_dialect_in_effect_and_why(
    server_stub: StubServer, jp_fetch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = json.loads((await jp_fetch("mistral-magic", "config")).body)
    assert config["dialect"] == "mistral"
    assert config["dialect_reason"] == "from /models: cards carry capabilities (La Plateforme)"
    monkeypatch.setenv("MISTRAL_DIALECT", "openai")
    config = json.loads((await jp_fetch("mistral-magic", "config")).body)
    assert (config["dialect"], config["dialect_reason"]) == ("openai", "forced by MISTRAL_DIALECT")


async def test_a_rate_limit_wait_is_a_notice_event(server_stub: StubServer, jp_fetch: Any) -> None:
    server_stub.queue(Fault(429, headers={"Retry-After": "1"}), Reply(text="Finally."))
    events = await _chat(jp_fetch)
    # (mistral-large-2407's deprecation, an "info" notice, is said first: left out here)
    events = [e for e in events if e[1].get("kind") != "info"]
    names = [name for name, _ in events]
    assert names[:3] == ["context", "notice", "delta"], events
    assert events[1][1] == {"message": "rate limited, retrying in 1 s", "kind": "rate_limited"}
    assert len(server_stub.chat_requests) == 2


async def test_sidebar_errors_point_at_the_servers_environment(
    server_stub: StubServer, jp_fetch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MISTRAL_API_KEY")
    events = await _chat(jp_fetch)
    name, error = events[1]
    assert name == "error" and error["type"] == "MissingAPIKeyError"
    assert "environment of the Jupyter server" in error["message"]
    assert "getpass" not in error["message"] and "%mistral" not in error["message"]
