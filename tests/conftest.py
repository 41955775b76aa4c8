"""Shared pytest fixtures. Keep one section per area; add new fixtures below their kin."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.stub import StubServer
from tests.stub.captures import find_captures_dir

# ------------------------------------------------------------------ the user's cache folder

# Nothing of a test run is read from or written to the user's cache (~/.cache/mistral-magic:
# the response cache, kept GET /models answers): the kernels and servers the tests start
# inherit this. A test wanting a folder of its own sets MISTRAL_MAGIC_CACHE_DIR itself.
_CACHE = tempfile.mkdtemp(prefix="mistral-magic-tests-")
os.environ["MISTRAL_MAGIC_CACHE_DIR"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)

# ------------------------------------------------------------------ Mistral stub server


@pytest.fixture
def stub() -> Iterator[StubServer]:
    """A started La Plateforme stub (key ``test-key``), stopped after the test."""
    from mistral_magic.api.dialect import MEMORY

    server = StubServer()
    server.start()
    base_url = server.base_url
    # What an earlier server on the same port said about its dialect is not this one's.
    MEMORY.forget(base_url)
    try:
        yield server
    finally:
        server.stop()
        MEMORY.forget(base_url)


@pytest.fixture
def stub_env(stub: StubServer, monkeypatch: pytest.MonkeyPatch) -> StubServer:
    """``stub`` plus MISTRAL_API_KEY / MISTRAL_BASE_URL / MISTRAL_MODEL pointing at it."""
    monkeypatch.setenv("MISTRAL_API_KEY", stub.api_key or "")
    monkeypatch.setenv("MISTRAL_BASE_URL", stub.base_url)
    monkeypatch.setenv("MISTRAL_MODEL", "mistral-large-2407")
    return stub


@pytest.fixture
def stub_http(stub: StubServer) -> Iterator[httpx.Client]:
    """A raw httpx client on ``stub.base_url`` sending the stub's bearer key."""
    headers = {"Authorization": f"Bearer {stub.api_key}"}
    # verify=False: plain HTTP on 127.0.0.1, and it skips loading a CA bundle per test.
    with httpx.Client(base_url=stub.base_url, headers=headers, timeout=10, verify=False) as client:
        yield client


@pytest.fixture(scope="session")
def captures_dir() -> Path:
    """``tests/captures`` (real recorded Mistral traffic, shipped with the repo)."""
    found = find_captures_dir()
    if found is None:
        pytest.fail(
            "tests/captures not found: the recorded traffic ships with the repo", pytrace=False
        )
    return found


# ------------------------------------------------------------------ jupyter_server (pytest-jupyter)

pytest_plugins = ("pytest_jupyter.jupyter_server",)


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    """pytest-jupyter's ``jp_serverapp`` / ``jp_fetch`` with the server extension on."""
    return {"ServerApp": {"jpserver_extensions": {"mistral_magic": True}}}


@pytest.fixture
def lab_stub(stub_env: StubServer, monkeypatch: pytest.MonkeyPatch) -> StubServer:
    """The stub as the model, configured before the server extension reads its settings."""
    monkeypatch.setenv("MISTRAL_DIALECT", "mistral")
    return stub_env


@pytest.fixture
def service(jp_serverapp: Any) -> Any:
    """The server extension's ``MistralService`` (its settings, sessions and limits)."""
    return jp_serverapp.web_app.settings["mistral_magic_service"]
