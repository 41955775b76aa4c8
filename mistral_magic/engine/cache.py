"""A persistent response cache: SQLite in the user's cache folder, shared by every kernel.

    cache = ResponseCache()                       # Mistral.cache_dir, Mistral.cache_max_mb
    key = request_key(base_url, body)             # body: the exact JSON request body
    cache.put(key, completion)
    cache.get(key)                                # -> Completion | None

* Key: SHA-256 of the server's base URL and the exact request body (model, messages and
  every parameter, canonical JSON). The API key is never part of a body, so it is never
  stored; neither are failed requests.
* Concurrency: WAL journal and a busy timeout, so two kernels (or processes) can read and
  write at the same time.
* Size: bounded by ``max_bytes``; the least recently used entries go first.
* Location: ``Mistral.cache_dir`` (default ``$MISTRAL_MAGIC_CACHE_DIR``, else
  ``$XDG_CACHE_HOME/mistral-magic``, else ``~/.cache/mistral-magic``), created private to
  the user (mode 0700).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import default_cache_dir as default_cache_dir  # the cache's own default

if TYPE_CHECKING:
    from ..api.types import Completion
    from ..config import Mistral


FILE_NAME = "responses.sqlite3"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_SECONDS = 30.0
EVICT_EVERY_PUTS = 64
EVICT_DOWN_TO = 0.9  # after eviction the cache holds at most this fraction of max_bytes
ROW_OVERHEAD_BYTES = 120  # key, model, timestamps, SQLite bookkeeping (an estimate)
_LOOKUP_CHUNK = 500  # SQLite's host-parameter limit is 999 on old builds

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    value BLOB NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL,
    accessed REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_accessed ON responses(accessed);
"""


def _while_busy(step: Callable[[], None]) -> None:
    """Run ``step``, again while another process holds the database. Switching a new file
    to WAL can answer "database is locked" at once, without waiting for the busy timeout,
    when two kernels open the cache at the same moment."""
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            busy = "locked" in str(exc) or "busy" in str(exc)
            if not busy or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class CacheError(Exception):
    """The cache cannot be used (unwritable folder, damaged file); one clear paragraph."""


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_key(base_url: str, body: Mapping[str, Any]) -> str:
    """The cache key of one request: SHA-256 over the server and the exact body."""
    material = canonical_json({"server": base_url.rstrip("/"), "body": body})
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def completion_to_wire(completion: Completion) -> dict[str, Any]:
    """A completion in the API's non-stream shape (what :func:`parse_completion` reads)."""
    choices = []
    for choice in completion.choices:
        calls = [call.to_wire() for call in choice.tool_calls] or None
        choices.append(
            {
                "index": choice.index,
                "message": {"role": "assistant", "content": choice.content, "tool_calls": calls},
                "finish_reason": choice.finish_reason,
            }
        )
    usage = completion.usage
    return {
        "id": completion.id,
        "object": "chat.completion",
        "created": completion.created,
        "model": completion.model,
        "choices": choices,
        "usage": None
        if usage is None
        else {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        },
    }


def _encode(completion: Completion) -> bytes:
    return zlib.compress(canonical_json(completion_to_wire(completion)).encode("utf-8"))


def _decode(blob: bytes) -> Completion:
    from ..api.wire import parse_completion

    return parse_completion(json.loads(zlib.decompress(blob)))


@dataclass(frozen=True)
class CacheInfo:
    path: Path
    entries: int
    size_bytes: int
    max_bytes: int
    oldest: float | None
    newest: float | None
    file_bytes: int

    def markdown(self) -> str:
        def when(stamp: float | None) -> str:
            return "—" if stamp is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp))

        mb = 1024 * 1024
        return "\n".join(
            [
                "| response cache | |",
                "|---|---|",
                f"| location | `{self.path}` |",
                f"| entries | {self.entries:,} |",
                f"| size | {self.size_bytes / mb:,.1f} MB of {self.max_bytes / mb:,.0f} MB "
                f"(file {self.file_bytes / mb:,.1f} MB) |",
                f"| oldest entry | {when(self.oldest)} |",
                f"| newest entry | {when(self.newest)} |",
            ]
        )


class ResponseCache:
    """Completions by request key, in one SQLite file; safe across threads and processes."""

    def __init__(
        self, directory: str | os.PathLike[str] | None = None, *, max_bytes: int | None = None
    ) -> None:
        self.directory = Path(directory) if directory else default_cache_dir()
        self.path = self.directory / FILE_NAME
        self.max_bytes = int(max_bytes) if max_bytes is not None else 512 * 1024 * 1024
        self._lock = threading.Lock()
        self._puts = 0
        self._conn = self._connect()
        self._evict_if_needed()

    @classmethod
    def from_settings(cls, settings: Mistral) -> ResponseCache:
        return cls(settings.cache_dir or None, max_bytes=int(settings.cache_max_mb * 1024 * 1024))

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.directory)!r}, max_bytes={self.max_bytes})"

    # -- connection ---------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_SECONDS,
                check_same_thread=False,
                isolation_level=None,  # autocommit; explicit BEGIN for multi-row writes
            )
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
            _while_busy(lambda: self._prepare(conn))
        except (sqlite3.Error, OSError) as exc:
            raise CacheError(
                f"The response cache at {self.path} cannot be used ({type(exc).__name__}: "
                f"{exc}). Check that the folder is writable, or choose another with "
                "%config Mistral.cache_dir = '...'; delete the file if it is damaged."
            ) from exc
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise CacheError(
                f"The response cache at {self.path} was written by a newer mistral-magic "
                f"(schema {version}). Upgrade, or point Mistral.cache_dir elsewhere."
            )
        conn.executescript(_SCHEMA)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ------------------------------------------------------------------------
    def get(self, key: str) -> Completion | None:
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, Completion]:
        """The cached completions among ``keys`` (marked as just used)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, bytes] = {}
        with self._lock:
            for start in range(0, len(wanted), _LOOKUP_CHUNK):
                chunk = wanted[start : start + _LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT key, value FROM responses WHERE key IN ({marks})", chunk
                )
                found.update(rows.fetchall())
            if found:
                now = time.time()
                self._conn.execute("BEGIN")
                try:
                    self._conn.executemany(
                        "UPDATE responses SET accessed = ? WHERE key = ?",
                        [(now, key) for key in found],
                    )
                    self._conn.execute("COMMIT")
                except sqlite3.Error:
                    self._conn.execute("ROLLBACK")
                    raise
        return {key: _decode(blob) for key, blob in found.items()}

    def __contains__(self, key: str) -> bool:
        with self._lock:
            row = self._conn.execute("SELECT 1 FROM responses WHERE key = ?", (key,)).fetchone()
        return row is not None

    # -- writing ------------------------------------------------------------------------
    def put(self, key: str, completion: Completion) -> None:
        self.put_many([(key, completion)])

    def put_many(self, items: Iterable[tuple[str, Completion]]) -> None:
        """Store several completions in one transaction (cheaper than one put each)."""
        now = time.time()
        rows = []
        for key, completion in items:
            blob = _encode(completion)
            size = len(blob) + len(key) + ROW_OVERHEAD_BYTES
            rows.append((key, completion.model, blob, size, now, now))
        if not rows:
            return
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO responses "
                    "(key, model, value, size, created, accessed) VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self._conn.execute("COMMIT")
            except sqlite3.Error:
                self._conn.execute("ROLLBACK")
                raise
            before = self._puts
            self._puts += len(rows)
            due = before // EVICT_EVERY_PUTS != self._puts // EVICT_EVERY_PUTS
        if due:
            self._evict_if_needed()

    def _evict_if_needed(self) -> int:
        """Drop least recently used entries until the cache fits; the number dropped."""
        with self._lock:
            total = self._conn.execute("SELECT COALESCE(SUM(size), 0) FROM responses").fetchone()
            excess = total[0] - int(self.max_bytes * EVICT_DOWN_TO)
            if total[0] <= self.max_bytes or excess <= 0:
                return 0
            doomed: list[tuple[str]] = []
            for key, size in self._conn.execute(
                "SELECT key, size FROM responses ORDER BY accessed"
            ):
                doomed.append((key,))
                excess -= size
                if excess <= 0:
                    break
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany("DELETE FROM responses WHERE key = ?", doomed)
                self._conn.execute("COMMIT")
            except sqlite3.Error:
                self._conn.execute("ROLLBACK")
                raise
            return len(doomed)

    def clear(self) -> int:
        """Remove every entry (and give the disk space back); the number removed."""
        with self._lock:
            count = self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            self._conn.execute("DELETE FROM responses")
            try:
                self._conn.execute("VACUUM")
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.OperationalError:
                pass  # another process is reading; the space comes back later
        return int(count)

    # -- describing ---------------------------------------------------------------------
    def info(self) -> CacheInfo:
        with self._lock:
            entries, size, oldest, newest = self._conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0), MIN(created), MAX(created) FROM responses"
            ).fetchone()
        file_bytes = sum(
            p.stat().st_size
            for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm"))
            if p.exists()
        )
        return CacheInfo(self.path, entries, size, self.max_bytes, oldest, newest, file_bytes)
