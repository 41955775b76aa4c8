"""The SQLite response cache: keys, persistence, size bound, concurrent writers, no secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mistral_magic.api.types import Choice, Completion, Usage
from mistral_magic.config import Mistral
from mistral_magic.engine.cache import (
    FILE_NAME,
    CacheError,
    ResponseCache,
    default_cache_dir,
    request_key,
)

ROOT = Path(__file__).resolve().parents[1]
BASE = "https://api.mistral.ai/v1"
BODY = {
    "model": "mistral-large-2407",
    "messages": [{"role": "user", "content": "Classify: great"}],
    "temperature": 0.0,
    "max_tokens": 100,
}


def reply(text: str = "positive") -> Completion:
    return Completion(
        id="a" * 32,
        model="mistral-large-2407",
        created=1732548590,
        choices=[Choice(content=text, finish_reason="stop")],
        usage=Usage(10, 2, 12),
    )


def test_the_key_is_the_exact_request():
    key = request_key(BASE, BODY)
    assert key == request_key(BASE + "/", dict(reversed(list(BODY.items()))))  # order-free
    changed = [
        {**BODY, "model": "mistral-large-latest"},
        {**BODY, "messages": [{"role": "user", "content": "Classify: great!"}]},
        {**BODY, "temperature": 0.1},
        {**BODY, "max_tokens": 101},
        {**BODY, "random_seed": 1},
    ]
    assert len({key, *(request_key(BASE, b) for b in changed)}) == 6
    assert request_key("http://localhost:8000/v1", BODY) != key


def test_put_get_roundtrip_and_persistence(tmp_path):
    key = request_key(BASE, BODY)
    with ResponseCache(tmp_path) as cache:
        assert cache.get(key) is None
        cache.put(key, reply())
        assert key in cache
    with ResponseCache(tmp_path) as again:  # a new connection, as a new process would open
        got = again.get(key)
    assert got is not None and got.content == "positive" and got.usage.total_tokens == 12
    assert got.model == "mistral-large-2407" and got.finish_reason == "stop"
    assert (tmp_path / FILE_NAME).exists()


def test_settings_and_xdg_cache_home_choose_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MISTRAL_MAGIC_CACHE_DIR", str(tmp_path / "own"))
    assert default_cache_dir() == tmp_path / "own"  # first
    monkeypatch.delenv("MISTRAL_MAGIC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "mistral-magic"
    assert Mistral().cache_dir == str(tmp_path / "xdg" / "mistral-magic")
    settings = Mistral(cache_dir=str(tmp_path / "chosen"), cache_max_mb=1.0)
    with ResponseCache.from_settings(settings) as cache:
        assert cache.path == tmp_path / "chosen" / FILE_NAME
        assert cache.max_bytes == 1024 * 1024
    assert oct((tmp_path / "chosen").stat().st_mode & 0o777) == "0o700"


def test_wal_mode_for_concurrent_kernels(tmp_path):
    with ResponseCache(tmp_path) as cache:
        mode = cache._conn.execute("PRAGMA journal_mode").fetchone()[0]
        timeout = cache._conn.execute("PRAGMA busy_timeout").fetchone()[0]
    assert mode == "wal" and timeout >= 10_000


def test_size_is_bounded_least_recently_used_first(tmp_path):
    cache = ResponseCache(tmp_path, max_bytes=40_000)
    keys = [request_key(BASE, {**BODY, "max_tokens": i}) for i in range(400)]
    for i, key in enumerate(keys):
        cache.put(key, reply(os.urandom(60).hex()))
        if i == 10:
            cache.get(keys[0])  # recently used: survives longer than keys[1..]
    cache._evict_if_needed()
    info = cache.info()
    assert info.size_bytes <= 40_000
    assert 0 < info.entries < 400
    assert keys[-1] in cache and keys[1] not in cache
    cache.close()


def test_clear_and_info(tmp_path):
    with ResponseCache(tmp_path) as cache:
        for i in range(5):
            cache.put(request_key(BASE, {**BODY, "max_tokens": i}), reply())
        info = cache.info()
        assert info.entries == 5 and info.oldest is not None
        assert "| entries | 5 |" in info.markdown()
        assert cache.clear() == 5
        assert cache.info().entries == 0


def test_never_stores_the_api_key(tmp_path, monkeypatch):
    secret = "sk-THIS-KEY-MUST-NOT-BE-STORED-0123456789"
    monkeypatch.setenv("MISTRAL_API_KEY", secret)
    with ResponseCache(tmp_path) as cache:
        cache.put(request_key(BASE, BODY), reply())
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert secret.encode() not in stored


def test_an_unusable_folder_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(CacheError, match=r"cannot be used.*Mistral\.cache_dir"):
        ResponseCache(blocker / "sub")


WRITER = """
import sys
from mistral_magic.api.types import Choice, Completion
from mistral_magic.engine.cache import ResponseCache, request_key
cache = ResponseCache(sys.argv[1])
for i in range(200):
    body = {"model": "m", "messages": [{"role": "user", "content": f"{sys.argv[2]} {i}"}]}
    cache.put(request_key("http://x/v1", body), Completion(choices=[Choice(content=str(i))]))
    cache.get(request_key("http://x/v1", body))
print("ok")
"""


def test_two_processes_write_at_once(tmp_path):
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), name],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("kernel-a", "kernel-b")
    ]
    for writer in writers:
        out, err = writer.communicate(timeout=60)
        assert writer.returncode == 0 and out.strip() == "ok", err
    with ResponseCache(tmp_path) as cache:
        assert cache.info().entries == 400
