"""GET /models answers kept on disk per base URL (issue #12): a later process (a fresh
kernel) reads the dialect and the model cards there instead of asking, until the answer is
too old; never a key, never a server on this machine (unless asked, as these tests do), in
a folder of the test's own."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from mistral_magic.api import AsyncMistralClient, MistralClient
from mistral_magic.api.dialect import MEMORY
from mistral_magic.api.model_cache import ModelListCache, on_this_machine
from mistral_magic.config import Mistral, default_cache_dir

PAYLOAD = {"object": "list", "data": [{"id": "m", "capabilities": {"completion_chat": True}}]}
REMOTE = "https://models.example.org/v1"


@pytest.fixture(autouse=True)
def no_dialect_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MISTRAL_DIALECT", raising=False)


def model_list_requests(stub) -> int:
    return sum(1 for r in stub.requests if r.method == "GET" and r.path == "/v1/models")


def test_kept_until_too_old_private_and_without_credentials(tmp_path: Path) -> None:
    cache = ModelListCache(str(tmp_path / "models"), ttl=3600)
    with_credentials = "https://alice:s3cret-pass@models.example.org/v1"
    cache.save(with_credentials, PAYLOAD)
    payload, age = cache.load(with_credentials)
    assert payload == PAYLOAD and 0 <= age < 5
    kept = cache.path(with_credentials)
    text = kept.read_text()
    assert "s3cret-pass" not in text and "alice" not in text and "s3cret" not in kept.name
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(kept.parent.stat().st_mode) == 0o700
    saved = json.loads(text)["saved"]
    assert cache.load(with_credentials, now=saved + 3599) is not None
    assert cache.load(with_credentials, now=saved + 3600) is None  # too old
    assert cache.load(with_credentials, now=saved - 60) is None  # the clock went back
    assert cache.load(REMOTE) is None  # another server
    kept.write_text("{not json")
    assert cache.load(with_credentials) is None  # damaged: the server is asked
    assert ModelListCache(str(tmp_path / "off"), ttl=0).load(with_credentials) is None


def test_a_server_on_this_machine_is_always_asked(tmp_path: Path) -> None:
    for url in ("http://127.0.0.1:8000/v1", "http://localhost:8000/v1", "http://[::1]:8000/v1"):
        assert on_this_machine(url)
        cache = ModelListCache(str(tmp_path), ttl=3600)
        cache.save(url, PAYLOAD)
        assert cache.load(url) is None
    assert list(tmp_path.iterdir()) == []
    assert not on_this_machine(REMOTE)


def test_a_later_process_reads_the_dialect_and_cards_instead_of_asking(stub, tmp_path):
    stub.dialect = "vllm"
    cache = ModelListCache(str(tmp_path / "models"), ttl=3600, loopback=True)
    with MistralClient(api_key=stub.api_key, base_url=stub.base_url, models_cache=cache) as c:
        first = c.resolve_dialect()
    assert first.reason == "from /models: owned_by vllm"
    assert model_list_requests(stub) == 1
    MEMORY.forget(stub.base_url)  # what a fresh process knows
    with MistralClient(api_key=stub.api_key, base_url=stub.base_url, models_cache=cache) as c:
        again = c.resolve_dialect()
        assert again.dialect == "openai" and again.reason.startswith(first.reason + ", kept ")
        assert c.model_catalog().find("mistral-large-2407") is not None
        assert "".join(d.text for d in c.stream([{"role": "user", "content": "Hi"}]))
    assert model_list_requests(stub) == 1  # not asked again
    assert stub.api_key not in "".join(p.read_text() for p in (tmp_path / "models").iterdir())
    # asking again on purpose refreshes what is kept
    MEMORY.forget(stub.base_url)
    with MistralClient(api_key=stub.api_key, base_url=stub.base_url, models_cache=cache) as c:
        assert c.model_catalog(refresh=True)
    assert model_list_requests(stub) == 2


def test_the_async_client_reads_it_too(stub, tmp_path):
    import asyncio

    cache = ModelListCache(str(tmp_path), ttl=3600, loopback=True)
    cache.save(stub.base_url, {"object": "list", "data": [{"id": "x", "owned_by": "vllm"}]})

    async def ask() -> str:
        client = AsyncMistralClient(
            api_key=stub.api_key, base_url=stub.base_url, models_cache=cache
        )
        try:
            return (await client.resolve_dialect()).dialect
        finally:
            await client.aclose()

    assert asyncio.run(ask()) == "openai"
    assert model_list_requests(stub) == 0


def test_settings_keep_it_in_the_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MISTRAL_MAGIC_CACHE_DIR", str(tmp_path / "chosen"))
    assert default_cache_dir() == tmp_path / "chosen"
    settings = Mistral()
    kept = settings.client_options()["models_cache"]
    assert kept == ModelListCache(str(tmp_path / "chosen" / "models"), 86400.0)
    settings.models_cache_ttl = 0
    assert settings.client_options()["models_cache"] is None
