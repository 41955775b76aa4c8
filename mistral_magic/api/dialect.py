"""Which wire dialect a server speaks: from what the server is, not from its host name.

La Plateforme validates strictly and refuses OpenAI's fields (``stream_options``, ``seed``);
vLLM speaks OpenAI's dialect and ignores fields it does not know. So the order is:

1. forced: the dialect setting, else ``MISTRAL_DIALECT`` (anything but ``auto``);
2. La Plateforme's own hosts (``*.mistral.ai``) speak ``mistral``;
3. ``GET /models``, asked once per base URL and remembered for the process (with the model
   cards it lists: :mod:`~mistral_magic.api.models`): vLLM's cards say
   ``owned_by: "vllm"`` and carry ``max_model_len``, La Plateforme's carry ``capabilities``,
   other OpenAI-style cards mean ``openai``;
4. when ``/models`` cannot tell, ``mistral``: its requests carry nothing an OpenAI-compatible
   server refuses in ordinary use, while OpenAI's ``stream_options`` is refused (422) by
   La Plateforme-style servers.

Every choice carries its reason, for ``%mistral config`` and the sidebar's settings.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from .errors import SettingsError
from .models import ModelCatalog

Dialect = Literal["mistral", "openai"]
FALLBACK: Dialect = "mistral"
_NAMES: dict[str, Dialect] = {
    "mistral": "mistral",
    "platform": "mistral",
    "la-plateforme": "mistral",
    "openai": "openai",
    "vllm": "openai",
}


@dataclass(frozen=True)
class DialectChoice:
    """A dialect and why it was chosen ("from /models: owned_by vllm")."""

    dialect: Dialect
    reason: str

    def __str__(self) -> str:
        return f"{self.dialect} ({self.reason})"


def parse_dialect(value: str | None) -> Dialect | None:
    """``mistral``/``openai`` (or an alias), None for ``auto`` or nothing."""
    choice = (value or "auto").strip().lower()
    if choice == "auto":
        return None
    if choice not in _NAMES:
        raise SettingsError(
            f"Unknown dialect {value!r}: use 'mistral' (La Plateforme), 'openai' (vLLM and "
            "other OpenAI-compatible servers) or 'auto'."
        )
    return _NAMES[choice]


def forced(value: str | None, reason: str) -> DialectChoice | None:
    dialect = parse_dialect(value)
    return DialectChoice(dialect, reason) if dialect else None


def by_host(base_url: str) -> DialectChoice | None:
    """``mistral`` for La Plateforme's own hosts, else None (ask the server)."""
    host = (urlsplit(base_url).hostname or "").lower()
    if host == "mistral.ai" or host.endswith(".mistral.ai"):
        return DialectChoice("mistral", f"{host} is La Plateforme")
    return None


def from_model_list(payload: Any) -> DialectChoice | None:
    """The dialect ``GET /models``'s answer shows, or None when it shows none."""
    cards = payload.get("data") if isinstance(payload, Mapping) else payload
    if not isinstance(cards, list):
        return None
    cards = [c for c in cards if isinstance(c, Mapping)]
    if any(str(c.get("owned_by", "")).lower() == "vllm" for c in cards):
        return DialectChoice("openai", "from /models: owned_by vllm")
    if any("max_model_len" in c for c in cards):
        return DialectChoice("openai", "from /models: cards carry max_model_len (vLLM)")
    if any(isinstance(c.get("capabilities"), Mapping) for c in cards):
        return DialectChoice("mistral", "from /models: cards carry capabilities (La Plateforme)")
    if cards:
        return DialectChoice("openai", "from /models: OpenAI-style cards")
    return None


def fallback(why: str) -> DialectChoice:
    return DialectChoice(FALLBACK, f"fallback: {why}")


class DialectMemory:
    """What each base URL's ``/models`` said, for this process: the dialect, and the model
    cards (:class:`~mistral_magic.api.models.ModelCatalog`) read from the same answer. One
    probe at a time per URL (a second thread waits for the first one's answer instead of
    asking again)."""

    def __init__(self) -> None:
        self._known: dict[str, DialectChoice] = {}
        self._cards: dict[str, ModelCatalog] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, base_url: str) -> DialectChoice | None:
        return self._known.get(base_url)

    def put(self, base_url: str, choice: DialectChoice) -> None:
        self._known[base_url] = choice

    def catalog(self, base_url: str) -> ModelCatalog | None:
        """The cards the server listed, if its ``/models`` was read."""
        return self._cards.get(base_url)

    def put_catalog(self, base_url: str, catalog: ModelCatalog) -> None:
        self._cards[base_url] = catalog

    def forget(self, base_url: str | None = None) -> None:
        """Forget one base URL's answer (or all), e.g. after the server was replaced."""
        if base_url is None:
            self._known.clear()
            self._cards.clear()
        else:
            self._known.pop(base_url, None)
            self._cards.pop(base_url, None)

    @contextmanager
    def probing(self, base_url: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(base_url, threading.Lock())
        with lock:
            yield


#: The process-wide memory of probed servers.
MEMORY = DialectMemory()
