"""MistralClient and AsyncMistralClient: chat completions (whole or streamed) and models.

Settings left as ``None`` are read from the environment when a request is made
(``MISTRAL_API_KEY``, ``MISTRAL_BASE_URL``, ``MISTRAL_MODEL``, ``MISTRAL_DIALECT``), so one
client follows the environment as it changes. Each client has one HTTP connection pool,
created on first use under a lock; all clients of the process share one SSL context, so the
CA bundle (~50 ms) is loaded once, and not at all for a plain-http server.

Bounds (each a constructor argument, each a ``Mistral`` setting):

* ``timeout``: a request fails once no *content* (text, a tool-call fragment, usage) has
  arrived for that many seconds: waiting for the answer to start, or a stream that stalls or
  trickles keep-alive comments. A long answer that keeps streaming is never cut. A timed-out
  request is never sent again (the server is working on it: asking again doubles the cost).
  (The async client cuts at the deadline itself; the sync one at the first keep-alive past
  it, as a blocking read cannot be shortened: under twice the timeout at worst.)
* ``max_reply_chars``: a reply longer than this is cut there, its stream closed.
* ``max_retries`` and ``retry_total_time``: 429 / 5xx / connection failures are retried with
  backoff (``Retry-After`` first), within both bounds; ``on_notice`` hears about each wait.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from .checks import check_base_url
from .defaults import (
    DEFAULT_BASE_URL,
    DEFAULT_FIM_MODEL,
    DEFAULT_MAX_REPLY_CHARS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MODEL,
    DEFAULT_RETRY_BUDGET,
    DEFAULT_TIMEOUT,
)
from .dialect import (
    MEMORY,
    Dialect,
    DialectChoice,
    by_host,
    fallback,
    forced,
    from_model_list,
    parse_dialect,
)
from .errors import (
    APIConnectionError,
    APITimeoutError,
    MissingAPIKeyError,
    MistralError,
    ReplyTooLongError,
    ResponseFormatError,
    SettingsError,
    StreamError,
    error_from_response,
    error_in_body,
    fim_unavailable,
)
from .model_cache import ModelListCache, age_text
from .models import ModelCatalog
from .request import body_sha256, build_chat_body, build_fim_body, encode_body
from .retry import OnNotice, RetryPolicy
from .scrub import Scrubber, url_secrets
from .sse import ErrorExplainer, SSEDecoder, StreamAccumulator
from .types import Completion, Delta, Message, ModelInfo
from .urls import display_url
from .wire import parse_completion

USER_AGENT = "mistral-magic/0.1"
# The dialect probe (GET /models) waits at most this long (or the timeout, if shorter).
PROBE_TIMEOUT = 10.0
# A probe that could not be answered (server down, key refused) is not asked again by the same
# client for this long with the same key: the dialect and the model cards of one question
# come from one GET /models, answered or not.
PROBE_RETRY_AFTER = 5.0
# After [DONE], up to this much of the body is read so the connection can be reused; a server
# that keeps talking past it gets its connection closed instead.
_DRAIN_LIMIT = 64 * 1024
# Error bodies are read up to this size: enough to quote, bounded against a hostile server.
_ERROR_BODY_LIMIT = 64 * 1024
_MODEL_LIST_LIMIT = 8 * 1024 * 1024
_DEFAULT_REST_LIMIT = 64 * 1024 * 1024

Messages = Sequence[Message | Mapping[str, Any]]


def import_connection_layer() -> None:
    """Import what the first connection pool imports (httpcore and h11, behind
    ``httpx.Client``): all CPU, so paid where the caller chooses (``%load_ext``), not by the
    first question. Making the pool itself is left to the pool's first use: for an https
    server it loads the CA bundle, which releases the GIL and can be done in the background."""
    import httpcore  # noqa: F401


_TLS_LOCK = threading.Lock()
_TLS: dict[bool, ssl.SSLContext] = {}


def tls_context(verify_peers: bool = True) -> ssl.SSLContext:
    """The process's SSL context: with the CA bundle (loaded once), or, for plain-http
    servers, one with no trust anchors at all (nothing to load; any TLS through it fails)."""
    with _TLS_LOCK:
        context = _TLS.get(verify_peers)
        if context is None:
            if verify_peers:
                context = httpx.create_ssl_context()
            else:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            _TLS[verify_peers] = context
        return context


@dataclass
class _Request:
    """One logical request, fixed before its first try (retries send the same)."""

    method: str
    url: str
    headers: dict[str, str]
    content: bytes | None = None
    model: str | None = None
    dialect: Dialect | None = None
    endpoint: str = "chat"  # "chat", "fim" or "rest": what a 404 means depends on it
    sha256: str = ""  # of ``content``, the bytes every try POSTs (a reply's provenance)


@dataclass(frozen=True)
class _ProbeOutcome:
    """What one ``GET /models`` said: the dialect, the model cards, and whether to remember
    them (a server that is down or refuses the key is asked again later)."""

    choice: DialectChoice
    catalog: ModelCatalog
    definitive: bool
    #: The JSON of a 200 answer (what the disk keeps), None otherwise.
    payload: Any = None


class _Tries:
    """The tries of one logical request share one retry budget (count and time)."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.started = time.monotonic()
        self.count = 0
        self.last_sent = self.started  # when the latest try went out: the stall clock's start

    def wait_after(self, error: MistralError) -> float | None:
        return self.policy.next_wait(error, self.count, time.monotonic() - self.started)


class _ClientCore:
    """Settings, request building and error mapping shared by the sync and async clients."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        model: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        *,
        dialect: str | DialectChoice | None = None,
        backoff: float = 0.5,
        retry_total_time: float = DEFAULT_RETRY_BUDGET,
        max_reply_chars: int = DEFAULT_MAX_REPLY_CHARS,
        max_connections: int | None = None,
        models_cache: ModelListCache | None = None,
    ) -> None:
        self._api_key_setting = api_key
        #: Where GET /models answers are kept between processes (None: not on disk).
        self.models_cache = models_cache
        self._base_url_setting = check_base_url(base_url) if base_url else None
        self._model_setting = model or None
        if isinstance(dialect, str):
            parse_dialect(dialect)  # an unknown name fails here, with the reason
        self._dialect_setting = dialect
        if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
            raise SettingsError(
                f"The timeout must be a number of seconds above 0, not {timeout!r}."
            )
        if max_reply_chars < 1:
            raise SettingsError(f"max_reply_chars must be at least 1, not {max_reply_chars!r}.")
        if max_retries < 0:
            raise SettingsError(f"max_retries must be 0 or more, not {max_retries!r}.")
        self.timeout = float(timeout)
        self.max_reply_chars = int(max_reply_chars)
        self.retry = RetryPolicy(
            max_retries=max_retries, backoff=backoff, total_time=retry_total_time
        )
        self._max_connections = max_connections
        self._pool_lock = threading.Lock()
        self._pool_tls = False
        self._retired: list[Any] = []  # pools replaced by one with TLS, closed with the client
        self._failed_probe: tuple[tuple[str, str | None], float, _ProbeOutcome] | None = None

    # -- settings, read when a request is made ---------------------------------------------
    @property
    def _api_key(self) -> str | None:
        if self._api_key_setting is not None:
            return self._api_key_setting or None
        return os.environ.get("MISTRAL_API_KEY") or None

    @property
    def has_api_key(self) -> bool:
        return bool(self._api_key)

    @property
    def base_url(self) -> str:
        """The API root in use (raises :class:`SettingsError` for a malformed one)."""
        if self._base_url_setting:
            return self._base_url_setting
        return check_base_url(os.environ.get("MISTRAL_BASE_URL") or DEFAULT_BASE_URL)

    @property
    def display_url(self) -> str:
        """The base URL as it may be shown: without credentials."""
        try:
            return display_url(self.base_url)
        except SettingsError:
            return display_url(os.environ.get("MISTRAL_BASE_URL") or "")

    @property
    def model(self) -> str:
        return self._model_setting or os.environ.get("MISTRAL_MODEL") or DEFAULT_MODEL

    @property
    def scrubber(self) -> Scrubber:
        """Removes this client's secrets (the key, URL credentials) from quoted text."""
        raw_url = self._base_url_setting or os.environ.get("MISTRAL_BASE_URL") or ""
        return Scrubber.for_client(self._api_key, raw_url)

    def __repr__(self) -> str:
        key = "set" if self._api_key else "missing"
        return (
            f"{type(self).__name__}(base_url={self.display_url!r}, model={self.model!r}, "
            f"api_key={key})"
        )

    # -- the dialect ------------------------------------------------------------------------
    def _forced_dialect(self, base_url: str) -> DialectChoice | None:
        setting = self._dialect_setting
        if isinstance(setting, DialectChoice):
            return setting
        if setting is not None:  # given, "auto" included: the environment does not count
            chosen = forced(setting, "forced by the dialect setting")
        else:
            chosen = forced(os.environ.get("MISTRAL_DIALECT"), "forced by MISTRAL_DIALECT")
        return chosen or by_host(base_url)

    def known_dialect(self) -> DialectChoice | None:
        """The dialect if it is known without asking the server (forced, by host, or
        remembered from an earlier ``GET /models``), else None."""
        base_url = self.base_url
        return self._forced_dialect(base_url) or MEMORY.get(base_url)

    @staticmethod
    def _probe_outcome(status: int | None, body: bytes, detail: str) -> _ProbeOutcome:
        """The dialect and the cards from the answer to ``GET /models``; only a definitive
        answer is remembered (a server that is down or refuses the key is asked again)."""
        if status is None:
            why = f"GET /models could not be asked ({detail})"
            return _ProbeOutcome(fallback(why), ModelCatalog.missing(why, settled=False), False)
        if status == 200:
            try:
                payload = json.loads(body)
            except ValueError:
                why = "GET /models did not answer JSON"
                return _ProbeOutcome(fallback(why), ModelCatalog.missing(why), True)
            choice = from_model_list(payload) or fallback("GET /models listed no models")
            return _ProbeOutcome(choice, ModelCatalog.from_payload(payload), True, payload)
        why = f"GET /models answered HTTP {status}"
        definitive = status in (404, 405, 501)
        catalog = ModelCatalog.missing(why, settled=definitive)
        return _ProbeOutcome(fallback(why), catalog, definitive)

    def _remembered(self, base_url: str, refresh: bool) -> _ProbeOutcome | None:
        """The outcome this process (or, for a failed probe, this client a moment ago) has
        for ``base_url`` already; None if ``GET /models`` is to be asked."""
        if not refresh:
            choice, catalog = MEMORY.get(base_url), MEMORY.catalog(base_url)
            if choice is not None and catalog is not None:
                return _ProbeOutcome(choice, catalog, True)
            kept = self._from_disk(base_url)
            if kept is not None:
                MEMORY.put(base_url, kept.choice)
                MEMORY.put_catalog(base_url, kept.catalog)
                return kept
        failed = self._failed_probe
        if failed is not None:
            key, when, outcome = failed
            if key == (base_url, self._api_key) and time.monotonic() - when < PROBE_RETRY_AFTER:
                return outcome
        return None

    def _from_disk(self, base_url: str) -> _ProbeOutcome | None:
        """What an earlier process's ``GET /models`` said, if it is kept and fresh."""
        if self.models_cache is None:
            return None
        kept = self.models_cache.load(base_url)
        if kept is None:
            return None
        payload, age = kept
        said = from_model_list(payload) or fallback("GET /models listed no models")
        choice = DialectChoice(said.dialect, f"{said.reason}, kept {age_text(age)} ago")
        return _ProbeOutcome(choice, ModelCatalog.from_payload(payload), True, payload)

    def _keep(self, base_url: str, outcome: _ProbeOutcome) -> _ProbeOutcome:
        if outcome.definitive:
            MEMORY.put(base_url, outcome.choice)
            MEMORY.put_catalog(base_url, outcome.catalog)
            if self.models_cache is not None and outcome.payload is not None:
                self.models_cache.save(base_url, outcome.payload)
            self._failed_probe = None
        else:
            self._failed_probe = ((base_url, self._api_key), time.monotonic(), outcome)
        return outcome

    # -- requests ---------------------------------------------------------------------------
    def _timeouts(self, seconds: float | None = None) -> httpx.Timeout:
        seconds = self.timeout if seconds is None else seconds
        return httpx.Timeout(seconds, connect=min(10.0, seconds))

    def _pool_limits(self) -> httpx.Limits:
        if self._max_connections is None:
            return httpx.Limits()
        n = self._max_connections
        return httpx.Limits(max_connections=n, max_keepalive_connections=n)

    def _headers(self, accept: str, base_url: str) -> dict[str, str]:
        headers = {"Accept": accept, "User-Agent": USER_AGENT}
        key = self._api_key
        if key:
            headers["Authorization"] = f"Bearer {key}"
        elif by_host(base_url) is not None:
            raise self._missing_key(None)
        return headers

    def _missing_key(self, status: int | None) -> MissingAPIKeyError:
        if status:
            return MissingAPIKeyError(
                f"No Mistral API key is set, and the server at {self.display_url} asks for one "
                f"(HTTP {status}). Put it in the MISTRAL_API_KEY environment variable of the "
                "process that sends the requests (for a self-hosted vLLM, the value of its "
                "--api-key; for La Plateforme, a key from https://console.mistral.ai/api-keys).",
                status=status,
            )
        return MissingAPIKeyError(
            "No Mistral API key is set. Create one at https://console.mistral.ai/api-keys and "
            "put it in the MISTRAL_API_KEY environment variable of the process that sends the "
            "requests. A self-hosted server (vLLM) is reached by setting MISTRAL_BASE_URL to it."
        )

    def _chat_request(
        self, messages: Messages, params: dict[str, Any], stream: bool, choice: DialectChoice
    ) -> _Request:
        base_url = self.base_url
        model = params.pop("model", None) or self.model
        body = build_chat_body(messages, params, model=model, dialect=choice.dialect, stream=stream)
        headers = self._headers("text/event-stream" if stream else "application/json", base_url)
        headers["Content-Type"] = "application/json"
        content = encode_body(body)
        return _Request(
            "POST",
            base_url + "/chat/completions",
            headers,
            content,
            model,
            choice.dialect,
            sha256=body_sha256(content),
        )

    def _fim_request(
        self, prompt: str, suffix: str, params: dict[str, Any], stream: bool
    ) -> _Request:
        base_url = self.base_url
        model = params.pop("model", None) or DEFAULT_FIM_MODEL
        body = build_fim_body(prompt, suffix, params, model=model, stream=stream)
        headers = self._headers("text/event-stream" if stream else "application/json", base_url)
        headers["Content-Type"] = "application/json"
        content = encode_body(body)
        dialect = self.known_dialect()
        return _Request(
            "POST",
            base_url + "/fim/completions",
            headers,
            content,
            model,
            dialect.dialect if dialect else None,
            endpoint="fim",
            sha256=body_sha256(content),
        )

    def _rest_request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        content_type: str | None = None,
        accept: str = "application/json",
    ) -> _Request:
        base_url = self.base_url
        headers = self._headers(accept, base_url)
        if content_type:
            headers["Content-Type"] = content_type
        return _Request(method, base_url + path, headers, content)

    # -- errors: every quoted server text goes through self.scrubber ---------------------------
    def _transport_error(self, exc: Exception) -> MistralError:
        detail = self.scrubber.quote(f"{type(exc).__name__}: {exc}", 200)
        if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
            return APITimeoutError(
                f"The model server at {self.display_url} did not answer within "
                f"{self.timeout:g} s: timed out ({detail}). Try again, ask for less "
                "(max_tokens), or raise the timeout setting (Mistral.timeout)."
            )
        return APIConnectionError(
            f"Could not reach the model server at {self.display_url} ({detail}). Check the "
            "network connection and MISTRAL_BASE_URL."
        )

    def _stalled(self) -> APITimeoutError:
        return APITimeoutError(
            f"The reply from {self.display_url} timed out: no new content for "
            f"{self.timeout:g} s (keep-alive messages do not count). The part received so far "
            "is kept. Try again, or raise the timeout setting (Mistral.timeout) if the server "
            "is slow to start answering long requests."
        )

    def _stream_broke(self, exc: Exception) -> StreamError:
        detail = self.scrubber.quote(f"{type(exc).__name__}: {exc}", 200)
        return StreamError(
            f"The connection to {self.display_url} broke off in the middle of the reply "
            f"({detail}). The part received so far is kept; ask again for the rest."
        )

    def _unfinished(self) -> StreamError:
        return StreamError(
            f"The reply from {self.display_url} ended before the server said it was done. "
            "The part received so far is kept; ask again for the rest."
        )

    def _too_long(self) -> ReplyTooLongError:
        return ReplyTooLongError(
            f"The reply passed {self.max_reply_chars:,} characters, the bound for one reply "
            "(the max_reply_chars setting), and was cut there; its stream was closed. The part "
            "received so far is kept."
        )

    def _not_events(self, line: str) -> ResponseFormatError:
        return ResponseFormatError(
            f"The server at {self.display_url} answered with an event stream that holds no "
            f"events ({self.scrubber.quote(line, 80)!r}). Is MISTRAL_BASE_URL the API root, "
            "ending in /v1?"
        )

    def _http_error(
        self, status: int, headers: httpx.Headers, body: bytes, request: _Request
    ) -> MistralError:
        sent_credentials = "Authorization" in request.headers or url_secrets(request.url)
        if status in (401, 403) and not sent_credentials:
            return self._missing_key(status)
        if status in (404, 405) and request.endpoint == "fim":
            return fim_unavailable(status, self.display_url, request.dialect)
        return error_from_response(
            status,
            body,
            {k.lower(): v for k, v in headers.items()},
            model=request.model,
            base_url=self.base_url,
            scrubber=self.scrubber,
            dialect=request.dialect,
        )

    def _decode_json(self, body: bytes) -> Any:
        try:
            return json.loads(body)
        except ValueError as exc:
            raise ResponseFormatError(
                f"The server at {self.display_url} answered with something that is not JSON "
                f"({self.scrubber.quote(body, 80)!r}). Is MISTRAL_BASE_URL the API root, "
                "ending in /v1?"
            ) from exc

    def _completion_from(self, body: bytes, request: _Request) -> Completion:
        payload = self._decode_json(body)
        is_error = isinstance(payload, Mapping) and (
            payload.get("object") == "error" or "error" in payload
        )
        if is_error and "choices" not in payload:
            raise self._explain_error(request)(payload)
        return parse_completion(payload)

    def _explain_error(self, request: _Request) -> ErrorExplainer:
        def explain(body: Mapping[str, Any]) -> MistralError:
            return error_in_body(
                body,
                model=request.model,
                base_url=self.base_url,
                scrubber=self.scrubber,
                dialect=request.dialect,
            )

        return explain

    def _accumulator(self, request: _Request) -> StreamAccumulator:
        return StreamAccumulator(self.scrubber, self._explain_error(request))

    def _decoder(self) -> SSEDecoder:
        return SSEDecoder(max_line=self._max_body)

    @property
    def _max_body(self) -> int:
        """The longest SSE line or event, or non-streamed body: the longest reply, JSON-escaped
        (a character may take up to 6 bytes as \\uXXXX), with room for the envelope."""
        return 8 * self.max_reply_chars + 65536

    def _models(self, payload: Any) -> list[ModelInfo]:
        cards = payload.get("data") if isinstance(payload, Mapping) else payload
        if not isinstance(cards, list):
            raise ResponseFormatError("The server's model list has no `data` array.")
        return [ModelInfo.from_wire(c) for c in cards if isinstance(c, Mapping)]

    def _too_big(self, limit: int) -> ResponseFormatError:
        return ResponseFormatError(
            f"The answer from {self.display_url} passed {limit:,} bytes, far more than any "
            "reply needs; it was not read further."
        )


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


def _is_event_stream(response: httpx.Response) -> bool:
    return "text/event-stream" in response.headers.get("content-type", "")


def _delivered(delta: Delta) -> bool:
    return bool(delta.text or delta.thinking or delta.tool_calls)


class MistralClient(_ClientCore):
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

    def _asked(self, base_url: str, refresh: bool = False) -> _ProbeOutcome:
        with MEMORY.probing(base_url):
            known = self._remembered(base_url, refresh)
            if known is not None:
                return known
            return self._keep(base_url, self._probe(base_url))

    def _probe(self, base_url: str) -> _ProbeOutcome:
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
                body = self._read_capped(response, _MODEL_LIST_LIMIT)
            finally:
                response.close()
        except httpx.HTTPError as exc:
            return self._probe_outcome(None, b"", type(exc).__name__)
        return self._probe_outcome(response.status_code, body, "")

    # -- sending ----------------------------------------------------------------------------
    def _send(self, request: _Request, tries: _Tries, on_notice: OnNotice | None) -> httpx.Response:
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
                    body = self._read_capped(response, _ERROR_BODY_LIMIT)
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
        max_bytes: int = _DEFAULT_REST_LIMIT,
    ) -> bytes:
        """A request to ``base_url + path`` with the client's key and retries; the whole
        answer (at most ``max_bytes``). Errors are :class:`MistralError`."""
        request = self._rest_request(
            method, path, content=content, content_type=content_type, accept=accept
        )
        response = self._send(request, _Tries(self.retry), None)
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
        response = self._send(request, _Tries(self.retry), on_notice)
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
        response = self._send(request, _Tries(self.retry), on_notice)
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
            self.request_bytes("GET", "/models", max_bytes=_MODEL_LIST_LIMIT)
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
        build: Callable[[], _Request],
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
        tries = _Tries(client.retry)
        while True:
            self._acc = client._accumulator(request)
            delivered = False
            response = client._send(request, tries, self._on_notice)  # retries HTTP errors
            try:
                for delta in self._read(response, tries.last_sent, request):
                    delivered = delivered or _delivered(delta)
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

    def _read(self, response: httpx.Response, started: float, request: _Request) -> Iterator[Delta]:
        client = self._client
        try:
            if not _is_event_stream(response):
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
                    if drained > _DRAIN_LIMIT:
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


class AsyncMistralClient(_ClientCore):
    """The asyncio twin of :class:`MistralClient`: ``await complete(...)``,
    ``async for delta in stream(...)``."""

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
        """The server's model cards (see :meth:`MistralClient.model_catalog`)."""
        base_url = self.base_url
        known = None if refresh else MEMORY.catalog(base_url)
        if known is not None:
            return known
        return (await self._asked(base_url, refresh)).catalog

    async def _asked(self, base_url: str, refresh: bool = False) -> _ProbeOutcome:
        known = self._remembered(base_url, refresh)
        if known is not None:
            return known
        return self._keep(base_url, await self._probe(base_url))

    async def _probe(self, base_url: str) -> _ProbeOutcome:
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
                body = await self._read_capped(response, _MODEL_LIST_LIMIT)
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
        self, request: _Request, tries: _Tries, on_notice: OnNotice | None
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
                    body = await self._read_capped(response, _ERROR_BODY_LIMIT)
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
        max_bytes: int = _DEFAULT_REST_LIMIT,
    ) -> bytes:
        request = self._rest_request(
            method, path, content=content, content_type=content_type, accept=accept
        )
        response = await self._send(request, _Tries(self.retry), None)
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
        response = await self._send(request, _Tries(self.retry), on_notice)
        body = await self._read_body(response, self._max_body, self.timeout)
        return self._completion_from(body, request)

    def stream(
        self, messages: Messages, *, on_notice: OnNotice | None = None, **params: Any
    ) -> AsyncChatStream:
        params = dict(params)

        async def build() -> _Request:
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
        response = await self._send(request, _Tries(self.retry), on_notice)
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

        async def build() -> _Request:
            return self._fim_request(prompt, suffix, dict(params), True)

        return AsyncChatStream(self, build, on_notice)

    async def list_models(self) -> list[ModelInfo]:
        return self._models(await self.request_json("GET", "/models"))


class AsyncChatStream:
    """The asyncio twin of :class:`ChatStream`."""

    def __init__(
        self,
        client: AsyncMistralClient,
        build: Callable[[], Awaitable[_Request]],
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
        tries = _Tries(client.retry)
        while True:
            self._acc = client._accumulator(request)
            delivered = False
            response = await client._send(request, tries, self._on_notice)
            try:
                async for delta in self._read(response, tries.last_sent, request):
                    delivered = delivered or _delivered(delta)
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
        self, response: httpx.Response, started: float, request: _Request
    ) -> AsyncIterator[Delta]:
        import asyncio

        client = self._client
        acc = self._acc
        try:
            if not _is_event_stream(response):
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
                    if drained > _DRAIN_LIMIT:
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
