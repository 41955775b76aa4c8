"""What :class:`~mistral_magic.api.client.MistralClient` and
:class:`~mistral_magic.api.async_client.AsyncMistralClient` share: their settings, the
bookkeeping of the dialect probe (``GET /models``), the requests they build, the errors they
raise.

Settings left as ``None`` are read from the environment when a request is made
(``MISTRAL_API_KEY``, ``MISTRAL_BASE_URL``, ``MISTRAL_MODEL``, ``MISTRAL_DIALECT``), so one
client follows the environment as it changes. Each client has one HTTP connection pool,
created on first use under a lock; all clients of the process share one SSL context
(:func:`tls_context`), so the CA bundle (~50 ms) is loaded once, and not at all for a
plain-http server.

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

import json
import math
import os
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
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
from .retry import RetryPolicy
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
DRAIN_LIMIT = 64 * 1024
# Error bodies are read up to this size: enough to quote, bounded against a hostile server.
ERROR_BODY_LIMIT = 64 * 1024
MODEL_LIST_LIMIT = 8 * 1024 * 1024
DEFAULT_REST_LIMIT = 64 * 1024 * 1024

Messages = Sequence[Message | Mapping[str, Any]]


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
class ClientRequest:
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
class ProbeOutcome:
    """What one ``GET /models`` said: the dialect, the model cards, and whether to remember
    them (a server that is down or refuses the key is asked again later)."""

    choice: DialectChoice
    catalog: ModelCatalog
    definitive: bool
    #: The JSON of a 200 answer (what the disk keeps), None otherwise.
    payload: Any = None


class Tries:
    """The tries of one logical request share one retry budget (count and time)."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.started = time.monotonic()
        self.count = 0
        self.last_sent = self.started  # when the latest try went out: the stall clock's start

    def wait_after(self, error: MistralError) -> float | None:
        return self.policy.next_wait(error, self.count, time.monotonic() - self.started)


class ClientCore:
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
        self._failed_probe: tuple[tuple[str, str | None], float, ProbeOutcome] | None = None

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
    def _probe_outcome(status: int | None, body: bytes, detail: str) -> ProbeOutcome:
        """The dialect and the cards from the answer to ``GET /models``; only a definitive
        answer is remembered (a server that is down or refuses the key is asked again)."""
        if status is None:
            why = f"GET /models could not be asked ({detail})"
            return ProbeOutcome(fallback(why), ModelCatalog.missing(why, settled=False), False)
        if status == 200:
            try:
                payload = json.loads(body)
            except ValueError:
                why = "GET /models did not answer JSON"
                return ProbeOutcome(fallback(why), ModelCatalog.missing(why), True)
            choice = from_model_list(payload) or fallback("GET /models listed no models")
            return ProbeOutcome(choice, ModelCatalog.from_payload(payload), True, payload)
        why = f"GET /models answered HTTP {status}"
        definitive = status in (404, 405, 501)
        catalog = ModelCatalog.missing(why, settled=definitive)
        return ProbeOutcome(fallback(why), catalog, definitive)

    def _remembered(self, base_url: str, refresh: bool) -> ProbeOutcome | None:
        """The outcome this process (or, for a failed probe, this client a moment ago) has
        for ``base_url`` already; None if ``GET /models`` is to be asked."""
        if not refresh:
            choice, catalog = MEMORY.get(base_url), MEMORY.catalog(base_url)
            if choice is not None and catalog is not None:
                return ProbeOutcome(choice, catalog, True)
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

    def _from_disk(self, base_url: str) -> ProbeOutcome | None:
        """What an earlier process's ``GET /models`` said, if it is kept and fresh."""
        if self.models_cache is None:
            return None
        kept = self.models_cache.load(base_url)
        if kept is None:
            return None
        payload, age = kept
        said = from_model_list(payload) or fallback("GET /models listed no models")
        choice = DialectChoice(said.dialect, f"{said.reason}, kept {age_text(age)} ago")
        return ProbeOutcome(choice, ModelCatalog.from_payload(payload), True, payload)

    def _keep(self, base_url: str, outcome: ProbeOutcome) -> ProbeOutcome:
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
    ) -> ClientRequest:
        base_url = self.base_url
        model = params.pop("model", None) or self.model
        body = build_chat_body(messages, params, model=model, dialect=choice.dialect, stream=stream)
        headers = self._headers("text/event-stream" if stream else "application/json", base_url)
        headers["Content-Type"] = "application/json"
        content = encode_body(body)
        return ClientRequest(
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
    ) -> ClientRequest:
        base_url = self.base_url
        model = params.pop("model", None) or DEFAULT_FIM_MODEL
        body = build_fim_body(prompt, suffix, params, model=model, stream=stream)
        headers = self._headers("text/event-stream" if stream else "application/json", base_url)
        headers["Content-Type"] = "application/json"
        content = encode_body(body)
        dialect = self.known_dialect()
        return ClientRequest(
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
    ) -> ClientRequest:
        base_url = self.base_url
        headers = self._headers(accept, base_url)
        if content_type:
            headers["Content-Type"] = content_type
        return ClientRequest(method, base_url + path, headers, content)

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
        self, status: int, headers: httpx.Headers, body: bytes, request: ClientRequest
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

    def _completion_from(self, body: bytes, request: ClientRequest) -> Completion:
        payload = self._decode_json(body)
        is_error = isinstance(payload, Mapping) and (
            payload.get("object") == "error" or "error" in payload
        )
        if is_error and "choices" not in payload:
            raise self._explain_error(request)(payload)
        return parse_completion(payload)

    def _explain_error(self, request: ClientRequest) -> ErrorExplainer:
        def explain(body: Mapping[str, Any]) -> MistralError:
            return error_in_body(
                body,
                model=request.model,
                base_url=self.base_url,
                scrubber=self.scrubber,
                dialect=request.dialect,
            )

        return explain

    def _accumulator(self, request: ClientRequest) -> StreamAccumulator:
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


def is_event_stream(response: httpx.Response) -> bool:
    return "text/event-stream" in response.headers.get("content-type", "")


def carries_content(delta: Delta) -> bool:
    return bool(delta.text or delta.thinking or delta.tool_calls)
