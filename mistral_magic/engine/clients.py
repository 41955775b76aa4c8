"""The model clients of a session: built from the settings on first use, reused while the
settings stay the same, rebuilt when they change — and never closed under a reply that is
still streaming.

A face takes a client for one reply with ``with clients.lease() as client:``. Changing a
setting (``%config Mistral.timeout = 30`` while the chat panel streams on its thread) makes
the next lease build a new client; the old one is only *retired*, and closed when its last
lease ends. The Jupyter server shares one :class:`AsyncClients` between all its users (and
one more for Codestral, when inline completion has its own key or base URL).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .prepare import WireTarget

if TYPE_CHECKING:
    from ..api.async_client import AsyncMistralClient
    from ..api.client import MistralClient
    from ..api.models import Capabilities, ModelCatalog
    from ..config import Mistral

C = TypeVar("C")


#: What a pool's clients are built from: when any of it changes, a new client is needed.
#: (What follows the environment, like the main key, the client reads at each request.)
Options = Callable[["Mistral"], "dict[str, Any]"]


def main_options(settings: Mistral) -> dict[str, Any]:
    """The main model server's client options (the chat model's)."""
    return settings.client_options()


def codestral_options(settings: Mistral) -> dict[str, Any]:
    """Codestral's own server's client options (inline completion by fill-in-the-middle);
    the main server's when no Codestral key or base URL is given."""
    return settings.codestral_options() or settings.client_options()


class _Leases(Generic[C]):
    """The bookkeeping shared by the sync and async pools (under one lock)."""

    def __init__(self, settings: Mistral, options: Options = main_options) -> None:
        self.settings = settings
        #: What the clients are built from (the main server's options, or Codestral's).
        self.options = options
        self._lock = threading.Lock()
        self._current: C | None = None
        self._current_key: tuple[Any, ...] | None = None
        self._users: dict[int, int] = {}  # id(client) -> leases open
        self._retired: list[C] = []  # replaced clients with leases still open

    def _take(self, build: Any, *, lease: bool = True) -> tuple[C, list[C]]:
        """The current client (built or rebuilt as the settings say), leased once more if
        ``lease``; and the retired clients nobody uses any more, for the caller to close
        (none without ``lease``: they wait for the next lease to be closed)."""
        with self._lock:
            wanted = tuple(self.options(self.settings).items())
            if self._current is None or wanted != self._current_key:
                if self._current is not None:
                    self._retired.append(self._current)
                self._current = build()
                self._current_key = wanted
            client = self._current
            if not lease:
                return client, []
            self._users[id(client)] = self._users.get(id(client), 0) + 1
            return client, self._idle_retired()

    def _give_back(self, client: C) -> list[C]:
        with self._lock:
            left = self._users.get(id(client), 1) - 1
            if left:
                self._users[id(client)] = left
            else:
                self._users.pop(id(client), None)
            return self._idle_retired()

    def _idle_retired(self) -> list[C]:
        idle = [c for c in self._retired if id(c) not in self._users]
        self._retired = [c for c in self._retired if id(c) in self._users]
        return idle

    def _drop_all(self) -> list[C]:
        with self._lock:
            every = [*self._retired, *([self._current] if self._current is not None else [])]
            self._retired, self._current, self._current_key = [], None, None
            self._users.clear()
            return every

    @property
    def retired(self) -> int:
        """Replaced clients still serving a reply (tests, diagnostics)."""
        with self._lock:
            return len(self._retired)


class Clients(_Leases["MistralClient"]):
    """The synchronous client(s) of a kernel session."""

    def _build(self) -> MistralClient:
        from ..api.client import MistralClient

        return MistralClient(**self.options(self.settings))

    @contextmanager
    def lease(self) -> Iterator[MistralClient]:
        client, idle = self._take(self._build)
        _close(idle)
        try:
            yield client
        finally:
            _close(self._give_back(client))

    def current(self) -> MistralClient:
        """The current client, not leased: for what it knows (base URL, dialect), not to
        send with (use :meth:`lease`)."""
        return self._take(self._build, lease=False)[0]

    def target(self) -> WireTarget:
        """Where requests go and in which dialect, as the client sees it."""
        client = self.current()
        return WireTarget(client.base_url, client.dialect)

    def catalog(self, *, refresh: bool = False) -> ModelCatalog:
        """The server's model cards (from the ``GET /models`` that told the dialect)."""
        return self.current().model_catalog(refresh=refresh)

    def capabilities(self, model: str) -> Capabilities:
        """What ``model`` can do: its card, with ``Mistral.model_capabilities`` over it."""
        return self.catalog().capabilities(model, self.settings.model_capabilities)

    def close(self) -> None:
        _close(self._drop_all())


class AsyncClients(_Leases["AsyncMistralClient"]):
    """The async client of the Jupyter server: one per server process, shared by every user's
    session; each answer leases it on the event loop."""

    def _build(self) -> AsyncMistralClient:
        from ..api.async_client import AsyncMistralClient

        return AsyncMistralClient(**self.options(self.settings))

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[AsyncMistralClient]:
        client = await self.take()
        try:
            yield client
        finally:
            await self.give_back(client)

    async def take(self) -> AsyncMistralClient:
        """Lease the client (for a reply whose end is not one ``async with`` away): every
        :meth:`take` needs its :meth:`give_back`."""
        client, idle = self._take(self._build)
        await _aclose(idle)
        return client

    async def give_back(self, client: AsyncMistralClient) -> None:
        await _aclose(self._give_back(client))

    def current(self) -> AsyncMistralClient:
        """The current client, not leased: for what it knows (base URL, dialect)."""
        return self._take(self._build, lease=False)[0]

    async def target(self) -> WireTarget:
        """Where requests go and in which dialect (asking ``GET /models`` once per base URL
        when the dialect is not known yet)."""
        client = self.current()
        choice = await client.resolve_dialect()
        return WireTarget(client.base_url, choice.dialect)

    async def catalog(self, *, refresh: bool = False) -> ModelCatalog:
        """The server's model cards (from the ``GET /models`` that told the dialect)."""
        return await self.current().model_catalog(refresh=refresh)

    async def capabilities(self, model: str) -> Capabilities:
        return (await self.catalog()).capabilities(model, self.settings.model_capabilities)

    async def aclose(self) -> None:
        await _aclose(self._drop_all())


def _close(clients: list[MistralClient]) -> None:
    for client in clients:
        client.close()


async def _aclose(clients: list[AsyncMistralClient]) -> None:
    for client in clients:
        await client.aclose()
