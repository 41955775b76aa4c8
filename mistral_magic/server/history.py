"""Chat history, per user, bounded, kept on the server so it survives a page reload.

One JSON file per user under the history directory (``<jupyter data dir>/mistral_magic/
history`` by default); file names are a hash of the user name. Entries are
``{"role": "user" | "assistant", "text": ..., ...}`` dicts; only the newest ``max_entries``
are kept and each text is clipped to ``max_chars``.

Clearing (New chat) starts a new *generation* of a user's history. An answer records the
generation it was asked in and writes its exchange back only if that generation is still
current, so an answer that was streaming when the chat was cleared can never bring the
forgotten chat back (nor carry it to the model with the next question).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from mistral_magic.engine.conversation import Conversation

MAX_ENTRIES = 100
MAX_CHARS = 50_000


class HistoryStore:
    def __init__(
        self,
        directory: Path | str | None,
        *,
        max_entries: int = MAX_ENTRIES,
        max_chars: int = MAX_CHARS,
    ) -> None:
        self.directory = Path(directory) if directory else None
        self.max_entries = max_entries
        self.max_chars = max_chars
        self._cache: dict[str, list[dict[str, Any]]] = {}
        self._generations: dict[str, int] = {}
        self._lock = threading.Lock()

    def _path(self, user: str) -> Path | None:
        if self.directory is None:
            return None
        digest = hashlib.sha256(user.encode("utf-8")).hexdigest()[:24]
        return self.directory / f"{digest}.json"

    def load(self, user: str) -> list[dict[str, Any]]:
        with self._lock:
            if user not in self._cache:
                self._cache[user] = self._read(user)
            return [dict(entry) for entry in self._cache[user]]

    def _read(self, user: str) -> list[dict[str, Any]]:
        path = self._path(user)
        if path is None or not path.is_file():
            return []
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        entries = data.get("entries") if isinstance(data, dict) else None
        return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []

    def generation(self, user: str) -> int:
        """The user's history generation: it changes each time the history is cleared."""
        with self._lock:
            return self._generations.get(user, 0)

    def append(self, user: str, *entries: dict[str, Any], generation: int | None = None) -> bool:
        """Add ``entries`` (one exchange); with ``generation``, only if the history has not
        been cleared since that generation began. Returns whether they were added."""
        with self._lock:
            if generation is not None and generation != self._generations.get(user, 0):
                return False
            current = self._cache.get(user)
            if current is None:
                current = self._read(user)
            for entry in entries:
                entry = dict(entry)
                entry.setdefault("time", time.time())
                for field in ("text", "thinking"):  # a reasoning model's thinking too
                    text = entry.get(field)
                    if isinstance(text, str) and len(text) > self.max_chars:
                        entry[field] = text[: self.max_chars] + "\n[… clipped]"
                if isinstance(entry.get("tools"), list):
                    entry["tools"] = _kept_tool_lines(entry["tools"])
                current.append(entry)
            self._cache[user] = current[-self.max_entries :]
            self._write(user, self._cache[user])
            return True

    def clear(self, user: str) -> None:
        """Forget the user's history, and any exchange still being answered (see above)."""
        with self._lock:
            self._generations[user] = self._generations.get(user, 0) + 1
            self._cache[user] = []
            path = self._path(user)
            if path is not None and path.exists():
                path.unlink()

    def _write(self, user: str, entries: list[dict[str, Any]]) -> None:
        path = self._path(user)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".history-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"version": 1, "entries": entries}, handle, ensure_ascii=False)
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
            raise


def conversation_from(entries: list[dict[str, Any]]) -> Conversation:
    """Earlier turns for the model: each user entry with the assistant text that follows it
    (failed or stopped replies count with what was received; empty ones are skipped)."""
    conversation = Conversation()
    pending: str | None = None
    for entry in entries:
        role, text = entry.get("role"), entry.get("text")
        if not isinstance(text, str):
            continue
        if role == "user":
            pending = text
        elif role == "assistant" and pending is not None:
            if text.strip():
                conversation.add(pending, text)
            pending = None
    return conversation


#: What the history keeps of an answer's tool calls (their lines after a reload): the model
#: read more at the time; the file stays small however many calls an answer made.
MAX_TOOL_LINES = 32
TOOL_LINE_RESULT_CHARS = 2_000


def _kept_tool_lines(calls: list[Any]) -> list[Any]:
    kept = []
    for call in calls[:MAX_TOOL_LINES]:
        if isinstance(call, dict) and isinstance(call.get("result"), str):
            result = call["result"]
            if len(result) > TOOL_LINE_RESULT_CHARS:
                call = {**call, "result": result[:TOOL_LINE_RESULT_CHARS] + "\n[… clipped]"}
        kept.append(call)
    return kept
