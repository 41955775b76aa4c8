"""MistralClient and AsyncMistralClient: chat completions (whole or streamed) and models.

One ``httpx`` client per MistralClient, built on first use and reused, so connections (and
the CA bundle, ~50 ms to load) are paid for once.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

import httpx

from .defaults import DEFAULT_BASE_URL, DEFAULT_MODEL
from .errors import (
    APIConnectionError,
    APITimeoutError,
    MissingAPIKeyError,
    MistralError,
    StreamError,
    error_from_response,
    scrub,
)
from .request import Dialect, build_chat_body, resolve_dialect
from .retry import RetryPolicy
from .sse import SSEDecoder, StreamAccumulator
from .types import Completion, Delta, Message, ModelInfo
from .wire import ResponseFormatError, parse_completion

DEFAULT_TIMEOUT = 120.0
USER_AGENT = "mistral-magic/0.1"
# After [DONE], up to this much of the body is read so the connection can be reused; a server
# that keeps talking past it gets its connection closed instead.
_DRAIN_LIMIT = 64 * 1024

Messages = Sequence[Message | Mapping[str, Any]]


class _ClientCore:
    """Settings, request building and error mapping shared by the sync and async clients."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        model: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        *,
        dialect: str | None = None,
        backoff: float = 0.5,
        retry_total_time: float = 90.0,
    ) -> None:
        self._api_key = api_key if api_key is not None else os.environ.get("MISTRAL_API_KEY")
        self.base_url = (base_url or os.environ.get("MISTRAL_BASE_URL") or DEFAULT_BASE_URL).rstrip(
            "/"
        )
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"The base URL must start with http:// or https://, got {self.base_url!r}."
            )
        self.model = model or os.environ.get("MISTRAL_MODEL") or DEFAULT_MODEL
        self.dialect: Dialect = resolve_dialect(
            self.base_url, dialect or os.environ.get("MISTRAL_DIALECT")
        )
        self.timeout = timeout
        self.retry = RetryPolicy(
            max_retries=max_retries, backoff=backoff, total_time=retry_total_time
        )

    def __repr__(self) -> str:
        key = "set" if self._api_key else "missing"
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, model={self.model!r}, "
            f"dialect={self.dialect!r}, api_key={key})"
        )

    @property
    def has_api_key(self) -> bool:
        return bool(self._api_key)

    def _timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout, connect=min(10.0, self.timeout))

    def _headers(self, accept: str) -> dict[str, str]:
        headers = {"Accept": accept, "User-Agent": USER_AGENT}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        elif self.dialect == "mistral":
            raise MissingAPIKeyError(
                "No Mistral API key is set. Create one at https://console.mistral.ai/api-keys "
                "and put it in the MISTRAL_API_KEY environment variable before starting "
                "Jupyter (or, in the notebook without saving it: `import os, getpass; "
                'os.environ["MISTRAL_API_KEY"] = getpass.getpass()`). For a self-hosted vLLM '
                "server, set MISTRAL_BASE_URL to it instead."
            )
        return headers

    def _chat_request(
        self, messages: Messages, params: dict[str, Any], stream: bool
    ) -> tuple[bytes, dict[str, str], str]:
        model = params.pop("model", None) or self.model
        body = build_chat_body(messages, params, model=model, dialect=self.dialect, stream=stream)
        headers = self._headers("text/event-stream" if stream else "application/json")
        headers["Content-Type"] = "application/json"
        return json.dumps(body, ensure_ascii=False).encode(), headers, model

    def _transport_error(self, exc: Exception) -> MistralError:
        detail = scrub(f"{type(exc).__name__}: {exc}", self._api_key)
        if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
            return APITimeoutError(
                f"The model server at {self.base_url} did not answer within {self.timeout:g} s "
                f"({detail}). Try again, ask for less (max_tokens), or raise "
                "Mistral.timeout."
            )
        return APIConnectionError(
            f"Could not reach the model server at {self.base_url} ({detail}). Check the "
            "network connection and MISTRAL_BASE_URL."
        )

    def _stream_broke(self, exc: Exception) -> StreamError:
        detail = scrub(f"{type(exc).__name__}: {exc}", self._api_key)
        return StreamError(
            f"The connection to {self.base_url} broke off in the middle of the reply "
            f"({detail}). The part received so far is kept; ask again for the rest."
        )

    def _http_error(self, response: httpx.Response, body: bytes, model: str | None) -> MistralError:
        return error_from_response(
            response.status_code,
            body,
            {k.lower(): v for k, v in response.headers.items()},
            model=model,
            base_url=self.base_url,
            api_key=self._api_key,
        )

    def _decode_json(self, body: bytes) -> Any:
        try:
            return json.loads(body)
        except ValueError as exc:
            raise ResponseFormatError(
                f"The server at {self.base_url} answered with something that is not JSON "
                f"({body[:80]!r}). Is MISTRAL_BASE_URL the API root, ending in /v1?"
            ) from exc

    def _unfinished(self) -> StreamError:
        return StreamError(
            f"The reply from {self.base_url} ended before the server said it was done. "
            "The part received so far is kept; ask again for the rest."
        )

    def _models(self, payload: Any) -> list[ModelInfo]:
        cards = payload.get("data") if isinstance(payload, Mapping) else payload
        if not isinstance(cards, list):
            raise ResponseFormatError("The server's model list has no `data` array.")
        return [ModelInfo.from_wire(c) for c in cards if isinstance(c, Mapping)]


async def _async_sleep(seconds: float) -> None:
    # asyncio is imported here, not at the top: it costs ~80 ms, and a running event loop
    # (the only place this is awaited) has loaded it already.
    import asyncio

    await asyncio.sleep(seconds)


def _is_event_stream(response: httpx.Response) -> bool:
    return "text/event-stream" in response.headers.get("content-type", "")


def _delivered(delta: Delta) -> bool:
    return bool(delta.text or delta.thinking or delta.tool_calls)


class MistralClient(_ClientCore):
    """Synchronous client. ``None`` settings come from MISTRAL_API_KEY, MISTRAL_BASE_URL,
    MISTRAL_MODEL (and MISTRAL_DIALECT)."""

    def __init__(self, *args: Any, http_client: httpx.Client | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._http = http_client

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(timeout=self._timeout())
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> MistralClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        headers: dict[str, str],
        model: str | None = None,
    ) -> httpx.Response:
        """Send with retries; the caller owns (and closes) the successful response."""
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                request = self.http.build_request(
                    method, self.base_url + path, content=content, headers=headers
                )
                response = self.http.send(request, stream=True)
            except httpx.HTTPError as exc:
                error = self._transport_error(exc)
            else:
                if response.status_code < 400:
                    return response
                try:
                    body = response.read()
                except httpx.HTTPError:
                    body = b""
                finally:
                    response.close()
                error = self._http_error(response, body, model)
            if not self.retry.should_retry(error, attempt):
                raise error
            wait = self.retry.delay(error, attempt)
            if time.monotonic() - started + wait > self.retry.total_time:
                raise error
            time.sleep(wait)
            attempt += 1

    def complete(self, messages: Messages, **params: Any) -> Completion:
        """One whole reply (``POST /chat/completions``)."""
        content, headers, model = self._chat_request(messages, dict(params), stream=False)
        response = self._send(
            "POST", "/chat/completions", content=content, headers=headers, model=model
        )
        try:
            body = response.read()
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        finally:
            response.close()
        return parse_completion(self._decode_json(body))

    def stream(self, messages: Messages, **params: Any) -> ChatStream:
        """Iterate over the reply's deltas; afterwards ``.completion`` holds the whole reply."""
        content, headers, model = self._chat_request(messages, dict(params), stream=True)
        return ChatStream(self, content, headers, model)

    def list_models(self) -> list[ModelInfo]:
        """``GET /models``."""
        response = self._send("GET", "/models", headers=self._headers("application/json"))
        try:
            body = response.read()
        finally:
            response.close()
        return self._models(self._decode_json(body))


class ChatStream:
    """A streamed reply. Iterating sends the request; text arrives as :class:`Delta` objects.

    If the stream fails after text arrived, the raised :class:`MistralError` carries the
    partial reply in ``.partial`` (also here as ``.completion``). Breaking off the iteration
    closes the connection.
    """

    def __init__(
        self, client: MistralClient, content: bytes, headers: dict[str, str], model: str
    ) -> None:
        self._client = client
        self._content = content
        self._headers = headers
        self._model = model
        self._acc = StreamAccumulator()
        self._whole: Completion | None = None

    @property
    def completion(self) -> Completion:
        return self._whole or self._acc.completion()

    def __iter__(self) -> Iterator[Delta]:
        client = self._client
        attempt = 0
        while True:
            self._acc = StreamAccumulator()
            delivered = False
            response = client._send(  # retries HTTP errors itself
                "POST",
                "/chat/completions",
                content=self._content,
                headers=self._headers,
                model=self._model,
            )
            try:
                for delta in self._read(response):
                    delivered = delivered or _delivered(delta)
                    yield delta
                return
            except StreamError as error:
                error.partial = self.completion
                # Asking again is safe only while nothing has been shown to anyone.
                if delivered or not client.retry.should_retry_stream(attempt):
                    raise
                time.sleep(client.retry.delay(error, attempt))
                attempt += 1

    def _read(self, response: httpx.Response) -> Iterator[Delta]:
        client = self._client
        try:
            if not _is_event_stream(response):
                self._whole = parse_completion(client._decode_json(response.read()))
                yield Delta(text=self._whole.content, finish_reason=self._whole.finish_reason)
                return
            decoder = SSEDecoder()
            acc = self._acc
            drained = 0
            for chunk in response.iter_bytes():
                if acc.done:  # read the body's end, so the connection is reused
                    drained += len(chunk)
                    if drained > _DRAIN_LIMIT:
                        return
                    continue
                for payload in decoder.feed_bytes(chunk):
                    yield from acc.add(payload)
                    if acc.done:
                        break
            if acc.done:
                return
            for payload in decoder.finish():
                yield from acc.add(payload)
            if not acc.finished:
                raise client._unfinished()
        except httpx.HTTPError as exc:
            raise client._stream_broke(exc) from None
        finally:
            response.close()


class AsyncMistralClient(_ClientCore):
    """The asyncio twin of :class:`MistralClient`: ``await complete(...)``,
    ``async for delta in stream(...)``."""

    def __init__(self, *args: Any, http_client: httpx.AsyncClient | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._http = http_client

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout())
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> AsyncMistralClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _send(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        headers: dict[str, str],
        model: str | None = None,
    ) -> httpx.Response:
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                request = self.http.build_request(
                    method, self.base_url + path, content=content, headers=headers
                )
                response = await self.http.send(request, stream=True)
            except httpx.HTTPError as exc:
                error = self._transport_error(exc)
            else:
                if response.status_code < 400:
                    return response
                try:
                    body = await response.aread()
                except httpx.HTTPError:
                    body = b""
                finally:
                    await response.aclose()
                error = self._http_error(response, body, model)
            if not self.retry.should_retry(error, attempt):
                raise error
            wait = self.retry.delay(error, attempt)
            if time.monotonic() - started + wait > self.retry.total_time:
                raise error
            await _async_sleep(wait)
            attempt += 1

    async def complete(self, messages: Messages, **params: Any) -> Completion:
        content, headers, model = self._chat_request(messages, dict(params), stream=False)
        response = await self._send(
            "POST", "/chat/completions", content=content, headers=headers, model=model
        )
        try:
            body = await response.aread()
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        finally:
            await response.aclose()
        return parse_completion(self._decode_json(body))

    def stream(self, messages: Messages, **params: Any) -> AsyncChatStream:
        content, headers, model = self._chat_request(messages, dict(params), stream=True)
        return AsyncChatStream(self, content, headers, model)

    async def list_models(self) -> list[ModelInfo]:
        response = await self._send("GET", "/models", headers=self._headers("application/json"))
        try:
            body = await response.aread()
        finally:
            await response.aclose()
        return self._models(self._decode_json(body))


class AsyncChatStream:
    """The asyncio twin of :class:`ChatStream`."""

    def __init__(
        self, client: AsyncMistralClient, content: bytes, headers: dict[str, str], model: str
    ) -> None:
        self._client = client
        self._content = content
        self._headers = headers
        self._model = model
        self._acc = StreamAccumulator()
        self._whole: Completion | None = None

    @property
    def completion(self) -> Completion:
        return self._whole or self._acc.completion()

    async def __aiter__(self) -> AsyncIterator[Delta]:
        client = self._client
        attempt = 0
        while True:
            self._acc = StreamAccumulator()
            delivered = False
            response = await client._send(
                "POST",
                "/chat/completions",
                content=self._content,
                headers=self._headers,
                model=self._model,
            )
            try:
                async for delta in self._read(response):
                    delivered = delivered or _delivered(delta)
                    yield delta
                return
            except StreamError as error:
                error.partial = self.completion
                if delivered or not client.retry.should_retry_stream(attempt):
                    raise
                await _async_sleep(client.retry.delay(error, attempt))
                attempt += 1

    async def _read(self, response: httpx.Response) -> AsyncIterator[Delta]:
        client = self._client
        try:
            if not _is_event_stream(response):
                self._whole = parse_completion(client._decode_json(await response.aread()))
                yield Delta(text=self._whole.content, finish_reason=self._whole.finish_reason)
                return
            decoder = SSEDecoder()
            acc = self._acc
            drained = 0
            async for chunk in response.aiter_bytes():
                if acc.done:  # read the body's end, so the connection is reused
                    drained += len(chunk)
                    if drained > _DRAIN_LIMIT:
                        return
                    continue
                for payload in decoder.feed_bytes(chunk):
                    for delta in acc.add(payload):
                        yield delta
                    if acc.done:
                        break
            if acc.done:
                return
            for payload in decoder.finish():
                for delta in acc.add(payload):
                    yield delta
            if not acc.finished:
                raise client._unfinished()
        except httpx.HTTPError as exc:
            raise client._stream_broke(exc) from None
        finally:
            await response.aclose()
