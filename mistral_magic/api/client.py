"""MistralClient, the synchronous client, and its ChatStream: chat completions (whole or
streamed), fill-in-the-middle, models, other REST endpoints.

What it shares with the async client (settings read at each request, the dialect probe, the
bounds, the requests and the errors) is in :mod:`~mistral_magic.api.client_core`. Here a
blocking read cannot be shortened, so the stall ``timeout`` is checked as each chunk
arrives: a stream that trickles keep-alives is cut at the first one past the deadline, under
twice the timeout at worst. :func:`import_connection_layer` is what ``%load_ext`` calls so
the first question does not pay for importing the connection layer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
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
from .dialect import MEMORY, Dialect, DialectChoice
from .errors import MissingAPIKeyError, MistralError, StreamError
from .models import ModelCatalog
from .retry import OnNotice
from .sse import StreamAccumulator
from .types import Completion, Delta, ModelInfo


def import_connection_layer() -> None:
    """Import what the first connection pool imports (httpcore and h11, behind
    ``httpx.Client``): all CPU, so paid where the caller chooses (``%load_ext``), not by the
    first question. Making the pool itself is left to the pool's first use: for an https
    server it loads the CA bundle, which releases the GIL and can be done in the background."""
    import httpcore  # noqa: F401


class MistralClient(ClientCore):
    """Synchronous client. ``None`` settings come from MISTRAL_API_KEY, MISTRAL_BASE_URL,
    MISTRAL_MODEL (and MISTRAL_DIALECT), read when a request is made."""

    def __init__(self, *args: Any, http_client: httpx.Client | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._pool: httpx.Client | None = http_client
        self._pool_tls = http_client is not None

    # -- the connection pool ------------------------------------------------------------------
    def _http_for(self, url: str) -> httpx.Client:
        needs_tls = url.startswith("https:")
        pool = self._pool
        if pool is not None and (self._pool_tls or not needs_tls):
            return pool
        with self._pool_lock:  # one pool, even when two threads ask at once
            if self._pool is None or (needs_tls and not self._pool_tls):
                if self._pool is not None:
                    self._retired.append(self._pool)
                self._pool = httpx.Client(
                    timeout=self._timeouts(),
                    verify=tls_context(needs_tls),
                    limits=self._pool_limits(),
                )
                self._pool_tls = needs_tls
            return self._pool

    @property
    def http(self) -> httpx.Client:
        """The connection pool for the current base URL (made on first use)."""
        return self._http_for(self.base_url)

    def close(self) -> None:
        with self._pool_lock:
            pools, self._pool = [self._pool, *self._retired], None
            self._retired = []
        for pool in pools:
            if pool is not None:
                pool.close()

    def __enter__(self) -> MistralClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the dialect and the model cards ------------------------------------------------------
    def resolve_dialect(self) -> DialectChoice:
        """The dialect in use and why; asks ``GET /models`` once per base URL if needed."""
        base_url = self.base_url
        known = self._forced_dialect(base_url) or MEMORY.get(base_url)
        if known is not None:
            return known
        return self._asked(base_url).choice

    @property
    def dialect(self) -> Dialect:
        return self.resolve_dialect().dialect

    def model_catalog(self, *, refresh: bool = False) -> ModelCatalog:
        """The server's model cards, from the same ``GET /models`` as the dialect (asked once
        per base URL; ``refresh`` asks again). Empty, with the reason, when it cannot be read."""
        base_url = self.base_url
        known = None if refresh else MEMORY.catalog(base_url)
        if known is not None:
            return known
        return self._asked(base_url, refresh).catalog

    def _asked(self, base_url: str, refresh: bool = False) -> ProbeOutcome:
        with MEMORY.probing(base_url):
            known = self._remembered(base_url, refresh)
            if known is not None:
                return known
            return self._keep(base_url, self._probe(base_url))

    def _probe(self, base_url: str) -> ProbeOutcome:
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
            response = http.send(request, stream=True)
            try:
                body = self._read_capped(response, MODEL_LIST_LIMIT)
            finally:
                response.close()
        except httpx.HTTPError as exc:
            return self._probe_outcome(None, b"", type(exc).__name__)
        return self._probe_outcome(response.status_code, body, "")

    # -- sending ----------------------------------------------------------------------------
    def _send(
        self, request: ClientRequest, tries: Tries, on_notice: OnNotice | None
    ) -> httpx.Response:
        """Send with retries; the caller owns (and closes) the successful response."""
        http = self._http_for(request.url)
        while True:
            try:
                built = http.build_request(
                    request.method, request.url, content=request.content, headers=request.headers
                )
                tries.last_sent = time.monotonic()
                response = http.send(built, stream=True)
            except httpx.HTTPError as exc:
                error = self._transport_error(exc)
            else:
                if response.status_code < 400:
                    return response
                try:
                    body = self._read_capped(response, ERROR_BODY_LIMIT)
                except httpx.HTTPError:
                    body = b""
                finally:
                    response.close()
                error = self._http_error(response.status_code, response.headers, body, request)
            wait = tries.wait_after(error)
            if wait is None:
                raise error
            tries.count += 1
            if on_notice is not None:
                on_notice(self.retry.notice(error, wait, tries.count))
            time.sleep(wait)

    def _read_capped(self, response: httpx.Response, limit: int) -> bytes:
        """Up to ``limit`` bytes of the body (the rest is left unread)."""
        parts: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            parts.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
        return b"".join(parts)[:limit]

    def _read_body(self, response: httpx.Response, limit: int, total: float | None) -> bytes:
        """The whole body: more than ``limit`` bytes, or (with ``total``) more than that many
        seconds after the headers, is an error."""
        deadline = None if total is None else time.monotonic() + total
        parts: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_bytes():
                parts.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise self._too_big(limit)
                if deadline is not None and time.monotonic() > deadline:
                    raise self._stalled()
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        finally:
            response.close()
        return b"".join(parts)

    def request_bytes(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        content_type: str | None = None,
        accept: str = "application/json",
        max_bytes: int = DEFAULT_REST_LIMIT,
    ) -> bytes:
        """A request to ``base_url + path`` with the client's key and retries; the whole
        answer (at most ``max_bytes``). Errors are :class:`MistralError`."""
        request = self._rest_request(
            method, path, content=content, content_type=content_type, accept=accept
        )
        response = self._send(request, Tries(self.retry), None)
        return self._read_body(response, max_bytes, None)

    def request_json(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content: bytes | None = None,
        content_type: str | None = None,
    ) -> Any:
        """A JSON request (``body``) or a prepared one (``content``); the decoded answer."""
        if body is not None:
            content = json.dumps(body, ensure_ascii=False).encode()
            content_type = "application/json"
        raw = self.request_bytes(method, path, content=content, content_type=content_type)
        return self._decode_json(raw)

    # -- chat -------------------------------------------------------------------------------
    def complete(
        self, messages: Messages, *, on_notice: OnNotice | None = None, **params: Any
    ) -> Completion:
        """One whole reply (``POST /chat/completions``)."""
        request = self._chat_request(messages, dict(params), False, self.resolve_dialect())
        response = self._send(request, Tries(self.retry), on_notice)
        body = self._read_body(response, self._max_body, self.timeout)
        return self._completion_from(body, request)

    def stream(
        self, messages: Messages, *, on_notice: OnNotice | None = None, **params: Any
    ) -> ChatStream:
        """Iterate over the reply's deltas; afterwards ``.completion`` holds the whole reply.
        ``on_notice`` hears about each wait before a retry (e.g. a 429's Retry-After)."""
        params = dict(params)
        return ChatStream(
            self,
            lambda: self._chat_request(messages, dict(params), True, self.resolve_dialect()),
            on_notice,
        )

    def complete_fim(
        self,
        prompt: str,
        suffix: str = "",
        *,
        on_notice: OnNotice | None = None,
        **params: Any,
    ) -> Completion:
        """One whole fill-in-the-middle answer (``POST /fim/completions``, Codestral): the
        code between ``prompt`` and ``suffix``. ``model`` defaults to codestral-latest."""
        request = self._fim_request(prompt, suffix, dict(params), False)
        response = self._send(request, Tries(self.retry), on_notice)
        body = self._read_body(response, self._max_body, self.timeout)
        return self._completion_from(body, request)

    def stream_fim(
        self,
        prompt: str,
        suffix: str = "",
        *,
        on_notice: OnNotice | None = None,
        **params: Any,
    ) -> ChatStream:
        """The fill-in-the-middle answer as a stream (the chat stream's shapes and rules:
        stall timeout, reply bound, retries before any text, ``.completion`` afterwards)."""
        params = dict(params)
        return ChatStream(
            self, lambda: self._fim_request(prompt, suffix, dict(params), True), on_notice
        )

    def list_models(self) -> list[ModelInfo]:
        """``GET /models``."""
        return self._models(self.request_json("GET", "/models"))

    def check_credentials(self) -> None:
        """Raise :class:`MissingAPIKeyError` now, before anything is sent that costs, when no
        key is set and the server needs one: La Plateforme always does; another server is
        asked (``GET /models``, free) and a 401 means it does. Other failures are left to the
        request that follows."""
        if self._api_key:
            return
        self._headers("application/json", self.base_url)
        try:
            self.request_bytes("GET", "/models", max_bytes=MODEL_LIST_LIMIT)
        except MissingAPIKeyError:
            raise
        except MistralError:
            pass


class ChatStream:
    """A streamed reply (of ``POST /chat/completions`` or ``/fim/completions``). Iterating
    sends the request; text arrives as :class:`Delta` objects.

    If the stream fails after text arrived, the raised :class:`MistralError` carries the
    partial reply in ``.partial`` (also here as ``.completion``). Breaking off the iteration
    closes the connection.
    """

    def __init__(
        self,
        client: MistralClient,
        build: Callable[[], ClientRequest],
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

    def __iter__(self) -> Iterator[Delta]:
        client = self._client
        request = self._build()
        self.request_sha256 = request.sha256
        tries = Tries(client.retry)
        while True:
            self._acc = client._accumulator(request)
            delivered = False
            response = client._send(request, tries, self._on_notice)  # retries HTTP errors
            try:
                for delta in self._read(response, tries.last_sent, request):
                    delivered = delivered or carries_content(delta)
                    yield delta
                return
            except StreamError as error:
                error.partial = self.completion
                # Asking again is safe only while nothing has been shown to anyone.
                wait = None if delivered else tries.wait_after(error)
                if wait is None:
                    raise
                tries.count += 1
                if self._on_notice is not None:
                    self._on_notice(client.retry.notice(error, wait, tries.count))
                time.sleep(wait)
            except MistralError as error:
                error.partial = self.completion
                raise

    def _read(
        self, response: httpx.Response, started: float, request: ClientRequest
    ) -> Iterator[Delta]:
        client = self._client
        try:
            if not is_event_stream(response):
                body = client._read_body(response, client._max_body, client.timeout)
                self._whole = client._completion_from(body, request)
                yield Delta(text=self._whole.content, finish_reason=self._whole.finish_reason)
                return
            decoder = client._decoder()
            acc = self._acc
            drained = 0
            last_progress, seen = started, acc.progress
            for chunk in response.iter_bytes():
                if acc.done:  # read the body's end, so the connection is reused
                    drained += len(chunk)
                    if drained > DRAIN_LIMIT:
                        return
                    continue
                for payload in decoder.feed_bytes(chunk):
                    yield from acc.add(payload)
                    if acc.size > client.max_reply_chars:
                        raise client._too_long()
                    if acc.done:
                        break
                now = time.monotonic()
                if acc.progress != seen:
                    last_progress, seen = now, acc.progress
                elif now - last_progress > client.timeout:
                    raise client._stalled()
            if acc.done:
                return
            for payload in decoder.finish():
                yield from acc.add(payload)
            if decoder.dispatched == 0 and decoder.stray_line:
                raise client._not_events(decoder.stray_line)
            if not acc.finished:
                raise client._unfinished()
        except httpx.TimeoutException:
            if self._acc.done:  # the reply is whole; only the body's end did not come
                return
            raise client._stalled() from None
        except httpx.HTTPError as exc:
            if self._acc.done:
                return
            raise client._stream_broke(exc) from None
        finally:
            response.close()
