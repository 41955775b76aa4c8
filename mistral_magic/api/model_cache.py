"""``GET /models`` answers remembered on disk, per base URL, for a while.

A fresh kernel asks the server's ``GET /models`` once (the dialect, the model cards: the
window, tools, vision, FIM). Over the network (La Plateforme: a round trip and ~50 kB of
cards) that is on the way of the first question asked right after ``%load_ext``; so the
answer is kept in the user's cache folder (``Mistral.cache_dir``, ``models/``) and a later
kernel reads it instead of asking, until it is ``ttl`` seconds old (``Mistral.
models_cache_ttl``; 0: never on disk). What is kept is the server's list of cards and the
base URL without credentials: never a key. A server on this machine (``localhost``,
``127.*``, ``::1``) is not kept: it answers in a few milliseconds, and it is the one most
often restarted with other models on the same port.

Best effort: a folder that cannot be written, or a damaged file, means asking the server.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .urls import display_url

VERSION = 1
#: A file larger than this is not read (the client reads at most 8 MB of /models).
MAX_FILE_BYTES = 16 * 1024 * 1024


def on_this_machine(base_url: str) -> bool:
    """Whether ``base_url`` is a loopback server (no ``ipaddress`` import: ~15 ms)."""
    try:
        host = (urlsplit(base_url).hostname or "").lower()
    except ValueError:
        return False
    return (
        host == "localhost"
        or host.endswith(".localhost")
        or host.startswith("127.")
        or host in ("::1", "0:0:0:0:0:0:0:1")
    )


@dataclass(frozen=True)
class ModelListCache:
    """Where and how long ``GET /models`` answers are kept (compared by value: a client
    is rebuilt when this changes)."""

    folder: str
    ttl: float
    #: Keep loopback servers too (tests of this module; see the module's notes).
    loopback: bool = False

    def usable(self, base_url: str) -> bool:
        return self.ttl > 0 and (self.loopback or not on_this_machine(base_url))

    def path(self, base_url: str) -> Path:
        # the name is a hash: the URL may hold credentials, and is no file name
        digest = hashlib.sha256(base_url.encode("utf-8")).hexdigest()[:40]
        return Path(self.folder) / f"{digest}.json"

    def load(self, base_url: str, now: float | None = None) -> tuple[Any, float] | None:
        """(the ``/models`` payload, its age in seconds), or None: none kept, too old, or
        unreadable."""
        if not self.usable(base_url):
            return None
        path = self.path(base_url)
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                return None
            kept = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(kept, dict) or kept.get("version") != VERSION:
            return None
        saved = kept.get("saved")
        if not isinstance(saved, (int, float)) or kept.get("base_url") != display_url(base_url):
            return None
        age = (time.time() if now is None else now) - saved
        if not 0 <= age < self.ttl:  # too old, or saved "in the future" (a clock change)
            return None
        return kept.get("payload"), age

    def save(self, base_url: str, payload: Any) -> None:
        """Keep ``payload`` for ``base_url`` (atomically, private to the user); never raises."""
        if not self.usable(base_url):
            return
        record = {
            "version": VERSION,
            "base_url": display_url(base_url),
            "saved": time.time(),
            "payload": payload,
        }
        import tempfile  # here: it is only needed to write (and costs a few ms to import)

        folder = Path(self.folder)
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=folder, suffix=".tmp")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as file:
                    json.dump(record, file, ensure_ascii=False)
                os.replace(temporary, self.path(base_url))
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except (OSError, TypeError, ValueError):
            pass

    def forget(self, base_url: str) -> None:
        with contextlib.suppress(OSError):
            self.path(base_url).unlink(missing_ok=True)


def age_text(seconds: float) -> str:
    """``3 min``, ``2 h``: how old a kept answer is, for the dialect's reason."""
    if seconds < 60:
        return f"{int(seconds)} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    return f"{int(seconds // 3600)} h"
