"""AsyncMistralClient and its AsyncChatStream: the asyncio twins of
:class:`~mistral_magic.api.client.MistralClient` and its stream (the Jupyter server's
relay, ``apply``/``map``'s worker pool).

What it shares with the sync client (settings read at each request, the dialect probe, the
bounds, the requests and the errors) is in :mod:`~mistral_magic.api.client_core`. Here the
stall ``timeout`` is a deadline on each read, so a stream that trickles keep-alives is cut
at the deadline itself. ``on_notice`` may be a coroutine function. asyncio is imported where
it is used, not at the top: it costs ~80 ms, and a running event loop has loaded it already.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from .client_core import (
    DEFAULT_REST_LIMIT,
    DRAIN_LIMIT,
    ERROR_BODY_LIMIT,
    MODEL_LIST_LIMIT,
    PROBE_TIMEOUT,
    USER_AGENT,
    ClientCore,
    ClientRequest,
    Messages,
    ProbeOutcome,
    Tries,
    carries_content,
    is_event_stream,
    tls_context,
)
from .dialect import MEMORY, DialectChoice
from .errors import MistralError, StreamError
from .models import ModelCatalog
from .retry import OnNotice
from .sse import StreamAccumulator
from .types import Completion, Delta, ModelInfo


async def _async_sleep(seconds: float) -> None:
    # asyncio is imported here, not at the top: it costs ~80 ms, and a running event loop
    # (the only place this is awaited) has loaded it already.
    import asyncio

    await asyncio.sleep(seconds)


async def _within(seconds: float, awaitable: Any) -> Any:
    """``await awaitable``, raising ``asyncio.TimeoutError`` after ``seconds``."""
    import asyncio

    if hasattr(asyncio, "timeout"):  # 3.11+: no task per call
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)


class AsyncMistralClient(ClientCore):
    """The asyncio twin of :class:`~mistral_magic.api.client.MistralClient`:
    ``await complete(...)``, ``async for delta in stream(...)``."""

    def __init__(self, *args: Any, http_client: httpx.AsyncClient | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._pool: httpx.AsyncClient | None = http_client
        self._pool_tls = http_client is not None

    def _http_for(self, url: str) -> httpx.AsyncClient:
        needs_tls = url.startswith("https:")
        pool = self._pool
        if pool is not None and (self._pool_tls or not needs_tls):
            return pool
        with self._pool_lock:
            if self._pool is None or (needs_tls and not self._pool_tls):
                if self._pool is not None:
                    self._retired.append(self._pool)
                self._pool = httpx.AsyncClient(
                    timeout=self._timeouts(),
                    verify=tls_context(needs_tls),
                    limits=self._pool_limits(),
                )
                self._pool_tls = needs_tls
            return self._pool

    @property
    def http(self) -> httpx.AsyncClient:
        return self._http_for(self.base_url)

    async def aclose(self) -> None:
        with self._pool_lock:
            pools, self._pool = [self._pool, *self._retired], None
            self._retired = []
        for pool in pools:
            if pool is not None:
                await pool.aclose()

    async def __aenter__(self) -> AsyncMistralClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def resolve_dialect(self) -> DialectChoice:
        """The dialect in use and why; asks ``GET /models`` once per base URL if needed."""
        base_url = self.base_url
        known = self._forced_dialect(base_url) or MEMORY.get(base_url)
        if known is not None:
            return known
        return (await self._asked(base_url)).choice

    async def model_catalog(self, *, refresh: bool = False) -> ModelCatalog:
        """The server's model cards (as
        :meth:`~mistral_magic.api.client.MistralClient.model_catalog`)."""
        base_url = self.base_url
        known = None if refresh else MEMORY.catalog(base_url)
        if known is not None:
            return known
        return (await self._asked(base_url, refresh)).catalog

    async def _asked(self, base_url: str, refresh: bool = False) -> ProbeOutcome:
        known = self._remembered(base_url, refresh)
        if known is not None:
            return known
        return self._keep(base_url, await self._probe(base_url))

    async def _probe(self, base_url: str) -> ProbeOutcome:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        http = self._http_for(base_url)
        try:
            request = http.build_request(
                "GET",
                base_url + "/models",
                headers=headers,
                timeout=self._timeouts(min(PROBE_TIMEOUT, self.timeout)),
            )
            response = await http.send(request, stream=True)
            try:
                body = await self._read_capped(response, MODEL_LIST_LIMIT)
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            return self._probe_outcome(None, b"", type(exc).__name__)
        return self._probe_outcome(response.status_code, body, "")

    async def _notify(self, on_notice: OnNotice | None, notice: Any) -> None:
        if on_notice is not None:
            result = on_notice(notice)
            if inspect.isawaitable(result):
                await result

    async def _send(
        self, request: ClientRequest, tries: Tries, on_notice: OnNotice | None
    ) -> httpx.Response:
        http = self._http_for(request.url)
        while True:
            try:
                built = http.build_request(
                    request.method, request.url, content=request.content, headers=request.headers
                )
                tries.last_sent = time.monotonic()
                response = await http.send(built, stream=True)
            except httpx.HTTPError as exc:
                error = self._transport_error(exc)
            else:
                if response.status_code < 400:
                    return response
                try:
                    body = await self._read_capped(response, ERROR_BODY_LIMIT)
                except httpx.HTTPError:
                    body = b""
                finally:
                    await response.aclose()
                error = self._http_error(response.status_code, response.headers, body, request)
            wait = tries.wait_after(error)
            if wait is None:
                raise error
            tries.count += 1
            await self._notify(on_notice, self.retry.notice(error, wait, tries.count))
            await _async_sleep(wait)

    async def _read_capped(self, response: httpx.Response, limit: int) -> bytes:
        parts: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            parts.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
        return b"".join(parts)[:limit]

    async def _read_body(self, response: httpx.Response, limit: int, total: float | None) -> bytes:
        import asyncio

        async def read() -> bytes:
            parts: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                parts.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise self._too_big(limit)
            return b"".join(parts)

        try:
            return await (read() if total is None else _within(total, read()))
        except asyncio.TimeoutError:
            raise self._stalled() from None
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        finally:
            await response.aclose()

    async def request_bytes(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        content_type: str | None = None,
        accept: str = "application/json",
        max_bytes: int = DEFAULT_REST_LIMIT,
    ) -> bytes:
        request = self._rest_request(
            method, path, content=content, content_type=content_type, accept=accept
        )
        response = await self._send(request, Tries(self.retry), None)
        return await self._read_body(response, max_bytes, None)

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content: bytes | None = None,
        content_type: str | None = None,
    ) -> Any:
        if body is not None:
            content = json.dumps(body, ensure_ascii=False).encode()
            content_type = "application/json"
        raw = await self.request_bytes(method, path, content=content, content_type=content_type)
        return self._decode_json(raw)

    async def complete(
        self, messages: Messages, *, on_notice: OnNotice | None = None, **params: Any
    ) -> Completion:
        choice = await self.resolve_dialect()
        request = self._chat_request(messages, dict(params), False, choice)
        response = await self._send(request, Tries(self.retry), on_notice)
        body = await self._read_body(response, self._max_body, self.timeout)
        return self._completion_from(body, request)

    def stream(
        self, messages: Messages, *, on_notice: OnNotice | None = None, **params: Any
    ) -> AsyncChatStream:
        params = dict(params)

        async def build() -> ClientRequest:
            choice = await self.resolve_dialect()
            return self._chat_request(messages, dict(params), True, choice)

        return AsyncChatStream(self, build, on_notice)

    async def complete_fim(
        self,
        prompt: str,
        suffix: str = "",
        *,
        on_notice: OnNotice | None = None,
        **params: Any,
    ) -> Completion:
        request = self._fim_request(prompt, suffix, dict(params), False)
        response = await self._send(request, Tries(self.retry), on_notice)
        body = await self._read_body(response, self._max_body, self.timeout)
        return self._completion_from(body, request)

    def stream_fim(
        self,
        prompt: str,
        suffix: str = "",
        *,
        on_notice: OnNotice | None = None,
        **params: Any,
    ) -> AsyncChatStream:
        params = dict(params)

        async def build() -> ClientRequest:
            return self._fim_request(prompt, suffix, dict(params), True)

        return AsyncChatStream(self, build, on_notice)

    async def list_models(self) -> list[ModelInfo]:
        return self._models(await self.request_json("GET", "/models"))


class AsyncChatStream:
    """The asyncio twin of :class:`ChatStream`."""

    def __init__(
        self,
        client: AsyncMistralClient,
        build: Callable[[], Awaitable[ClientRequest]],
        on_notice: OnNotice | None = None,
    ) -> None:
        self._client = client
        self._build = build  # the request, built when iteration starts
        self._on_notice = on_notice
        self._acc = StreamAccumulator()
        self._whole: Completion | None = None
        #: SHA-256 of the body as POSTed, once the request is made (empty before).
        self.request_sha256 = ""

    @property
    def completion(self) -> Completion:
        return self._whole or self._acc.completion()

    async def __aiter__(self) -> AsyncIterator[Delta]:
        client = self._client
        request = await self._build()
        self.request_sha256 = request.sha256
        tries = Tries(client.retry)
        while True:
            self._acc = client._accumulator(request)
            delivered = False
            response = await client._send(request, tries, self._on_notice)
            try:
                async for delta in self._read(response, tries.last_sent, request):
                    delivered = delivered or carries_content(delta)
                    yield delta
                return
            except StreamError as error:
                error.partial = self.completion
                wait = None if delivered else tries.wait_after(error)
                if wait is None:
                    raise
                tries.count += 1
                await client._notify(self._on_notice, client.retry.notice(error, wait, tries.count))
                await _async_sleep(wait)
            except MistralError as error:
                error.partial = self.completion
                raise

    async def _read(
        self, response: httpx.Response, started: float, request: ClientRequest
    ) -> AsyncIterator[Delta]:
        import asyncio

        client = self._client
        acc = self._acc
        try:
            if not is_event_stream(response):
                body = await client._read_body(response, client._max_body, client.timeout)
                self._whole = client._completion_from(body, request)
                yield Delta(text=self._whole.content, finish_reason=self._whole.finish_reason)
                return
            decoder = client._decoder()
            chunks = response.aiter_bytes()
            drained = 0
            last_progress, seen = started, acc.progress
            while True:
                # The deadline moves only with content: keep-alives do not push it back.
                remaining = client.timeout - (time.monotonic() - last_progress)
                if acc.done:  # the reply is whole: wait only briefly for the body's end
                    remaining = min(remaining, 1.0)
                if remaining <= 0:
                    if acc.done:
                        return
                    raise client._stalled()
                try:
                    chunk = await _within(remaining, chunks.__anext__())
                except StopAsyncIteration:
                    break
                if acc.done:  # read the body's end, so the connection is reused
                    drained += len(chunk)
                    if drained > DRAIN_LIMIT:
                        return
                    continue
                for payload in decoder.feed_bytes(chunk):
                    for delta in acc.add(payload):
                        yield delta
                    if acc.size > client.max_reply_chars:
                        raise client._too_long()
                    if acc.done:
                        break
                if acc.progress != seen:
                    last_progress, seen = time.monotonic(), acc.progress
            if acc.done:
                return
            for payload in decoder.finish():
                for delta in acc.add(payload):
                    yield delta
            if decoder.dispatched == 0 and decoder.stray_line:
                raise client._not_events(decoder.stray_line)
            if not acc.finished:
                raise client._unfinished()
        except (asyncio.TimeoutError, httpx.TimeoutException):
            if acc.done:
                return
            raise client._stalled() from None
        except httpx.HTTPError as exc:
            if acc.done:
                return
            raise client._stream_broke(exc) from None
        finally:
            await response.aclose()
