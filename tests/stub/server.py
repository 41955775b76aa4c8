"""``StubServer``: a local La Plateforme (or vLLM) chat API for tests, scriptable per test."""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from tests.stub.chat import chat_completions
from tests.stub.errors import GATEWAY_JSON_TYPE, ApiError, mistral_error
from tests.stub.fim import FIM_PATH, fim_completions
from tests.stub.models import DEFAULT_MODELS, model_card, model_list
from tests.stub.script import CaptureReplay, Drop, Fault, Reply, ScriptItem, kong_body
from tests.stub.tokens import tokenizer
from tests.stub.transport import HttpServer, RecordedRequest, Response

DIALECTS = ("mistral", "vllm")
DEFAULT_REPLY = "This is the stub's reply."

Handler = Callable[["StubServer", RecordedRequest, dict[str, str]], Response]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    handler: Handler
    auth: bool = True

    def match(self, path: str) -> dict[str, str] | None:
        regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.pattern) + "/?$"
        found = re.match(regex, path)
        return found.groupdict() if found else None


def _list_models(stub: StubServer, request: RecordedRequest, params: dict[str, str]) -> Response:
    listed = model_list(stub.served_models, stub.dialect, stub.created, stub.context_windows)
    return Response(200, listed)


def _get_model(stub: StubServer, request: RecordedRequest, params: dict[str, str]) -> Response:
    model_id = params["model_id"]
    if stub.dialect == "vllm":  # vLLM has no retrieve route
        return Response(404, {"detail": "Not Found"})
    if model_id not in stub.served_models:
        raise mistral_error(f"Invalid model: {model_id}", "invalid_model", "1500", 404)
    return Response(200, model_card(model_id, stub.dialect, stub.created, stub.context_windows))


BUILTIN_ROUTES: tuple[Route, ...] = (
    Route("POST", "/v1/chat/completions", chat_completions),
    Route("POST", FIM_PATH, fim_completions),
    Route("GET", "/v1/models", _list_models),
    Route("GET", "/v1/models/{model_id}", _get_model),
)


class StubServer:
    """A real HTTP server on ``host:port`` speaking Mistral's chat API (or vLLM's).

    Use as a context manager or call ``start()``/``stop()``. Script responses with
    ``queue(Reply(...), Fault(429), Drop(3), CaptureReplay("file.json"))``; inspect what the
    client sent through ``requests``/``last_request``/``chat_requests``.
    """

    _shared_routes: ClassVar[list[Route]] = []

    def __init__(
        self,
        api_key: str | None = "test-key",
        dialect: str = "mistral",
        models: list[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        retired: tuple[str, ...] = (),
        without: tuple[str, ...] = (),
    ) -> None:
        self.api_key = api_key
        self._initial_dialect = dialect
        # ``without``: ids left out of the line-up (a server that lists no Codestral, say);
        # ``reset()`` keeps them out.
        self._initial_models = [m for m in [*DEFAULT_MODELS, *(models or [])] if m not in without]
        self._initial_models = list(dict.fromkeys(self._initial_models))
        self.dialect = dialect
        self.models: list[str] = list(self._initial_models)
        # Retired on La Plateforme (``RETIRED_2407``): refused there with the recorded
        # invalid_model body and missing from its model list; vLLM still serves them.
        self._initial_retired = frozenset(retired)
        self.retired: frozenset[str] = self._initial_retired
        self.token_delay = 0.0
        self.latency = 0.0
        self.default_reply = DEFAULT_REPLY
        # model id -> window, over the model's own (a vLLM started with --max-model-len)
        self.context_windows: dict[str, int] = {}
        # body -> Reply (or raise ApiError) for requests with nothing queued; None = default
        self.responder: Callable[[dict[str, Any]], Reply | None] | None = None
        self.created = int(time.time())
        self._host = host
        self._lock = threading.Lock()
        self._queue: deque[list[Any]] = deque()  # [item, remaining times]
        # reset() starts a new generation: a request that arrived before it (e.g. one still
        # sleeping through ``latency`` after its client gave up) must not take what a later
        # test queued, just as a real server's late request never answers a new client.
        self._generation = 0
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)
        self._requests: list[RecordedRequest] = []
        self._routes: list[Route] = []
        self._reset_hooks: list[Callable[[], None]] = []
        self._http = HttpServer(host, port, self._dispatch, lambda: float(self.token_delay))

    # ----------------------------------------------------------------------- lifecycle

    def start(self) -> StubServer:
        # Load the tokenizer now (once per process, ~1-3 s) so no request waits for it.
        tokenizer()
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._http.port

    @property
    def verbose(self) -> bool:
        """Log every request to stderr (set before ``start()``)."""
        return self._http.verbose

    @verbose.setter
    def verbose(self, value: bool) -> None:
        self._http.verbose = value

    @property
    def root_url(self) -> str:
        """``http://host:port`` without ``/v1`` (the SDK's ``server_url``)."""
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API root including ``/v1``, as ``MISTRAL_BASE_URL`` expects it."""
        return f"{self.root_url}/v1"

    @property
    def served_models(self) -> list[str]:
        """The models this stub serves now (retired ones only on the vLLM dialect)."""
        if self.dialect == "vllm":
            return list(self.models)
        return [m for m in self.models if m not in self.retired]

    @property
    def dialect(self) -> str:
        return self._dialect

    @dialect.setter
    def dialect(self, value: str) -> None:
        if value not in DIALECTS:
            raise ValueError(f"dialect must be one of {DIALECTS}, not {value!r}")
        self._dialect = value

    # ------------------------------------------------------------------------ scripting

    def queue(self, *items: ScriptItem) -> None:
        """Append scripted responses, served FIFO to ``POST /v1/chat/completions`` and
        ``POST /v1/fim/completions`` (whichever comes next)."""
        for item in items:
            if not isinstance(item, (Reply, Fault, Drop, CaptureReplay)):
                raise TypeError(f"cannot queue {item!r}")
            times = item.times if isinstance(item, Fault) else 1
            with self._lock:
                self._queue.append([item, times])

    @property
    def queued(self) -> list[ScriptItem]:
        """Items not served yet (a Fault with times left counts once)."""
        with self._lock:
            return [entry[0] for entry in self._queue]

    def _take_scripted(self, before_validation: bool) -> ScriptItem | None:
        """Pop the head item if it is served at this stage (faults first, replies later)."""
        with self._lock:
            if not self._queue:
                return None
            item, times = self._queue[0]
            early = isinstance(item, Fault) or (
                isinstance(item, CaptureReplay) and item.status != 200
            )
            if early != before_validation:
                return None
            if times > 1:
                self._queue[0][1] = times - 1
            else:
                self._queue.popleft()
            return item

    def reset(self) -> None:
        """Clear the queue and recorded requests; restore every setting to its default."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()
            self._generation += 1
        self.dialect = self._initial_dialect
        self.models = list(self._initial_models)
        self.retired = self._initial_retired
        self.token_delay = 0.0
        self.latency = 0.0
        self.default_reply = DEFAULT_REPLY
        self.context_windows = {}
        self.responder = None
        for hook in self._reset_hooks:
            hook()

    def open_connections(self) -> int:
        """Client connections open right now (a streaming answer, or an idle keep-alive)."""
        return self._http.open_connections()

    def wait_for_connections(self, predicate: Callable[[int], bool], timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until ``predicate(open connections)`` holds; whether
        it did. Woken by every connection opened or closed, no polling."""
        return self._http.wait_connections(predicate, timeout)

    def on_reset(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` on ``reset()`` (for state kept by routes added from other modules)."""
        self._reset_hooks.append(hook)

    # ---------------------------------------------------------------------- recording

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def last_request(self) -> RecordedRequest | None:
        with self._lock:
            return self._requests[-1] if self._requests else None

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path == "/v1/chat/completions"]

    @property
    def fim_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path == FIM_PATH]

    # ------------------------------------------------------------------------- routing

    def route(self, method: str, pattern: str, handler: Handler, auth: bool = True) -> None:
        """Add an endpoint to this stub. ``pattern`` may hold ``{name}`` path parameters;
        ``handler(stub, request, params)`` returns a ``Response`` or raises ``ApiError``.
        Routes added later win over earlier and built-in ones."""
        self._routes.insert(0, Route(method.upper(), pattern, handler, auth))

    @classmethod
    def register_route(cls, method: str, pattern: str, handler: Handler, auth: bool = True) -> None:
        """Add an endpoint to every StubServer (e.g. from a module imported by conftest)."""
        cls._shared_routes.insert(0, Route(method.upper(), pattern, handler, auth))

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no request is being dispatched (False if ``timeout`` passed first)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def _dispatch(self, request: RecordedRequest) -> Response:
        with self._lock:
            self._in_flight += 1
        try:
            return self._dispatch_counted(request)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _dispatch_counted(self, request: RecordedRequest) -> Response:
        with self._lock:
            self._requests.append(request)
            generation = self._generation
        if self.latency:
            time.sleep(self.latency)
            with self._lock:
                stale = generation != self._generation
            if stale:
                return Response(abort=True)  # its client left long ago; a reset came since
        routes = [*self._routes, *self._shared_routes, *BUILTIN_ROUTES]
        matches = [(r, p) for r in routes if (p := r.match(request.path)) is not None]
        if not matches:
            raise self._not_found()
        for route, params in matches:
            if route.method == request.method or (
                request.method == "HEAD" and route.method == "GET"
            ):
                if route.auth:
                    self._check_auth(request)
                return route.handler(self, request, params)
        return Response(405, {"detail": "Method Not Allowed"})

    def _not_found(self) -> ApiError:
        if self.dialect == "vllm":
            return ApiError(404, {"detail": "Not Found"})
        return ApiError(404, kong_body(404) or "", content_type=GATEWAY_JSON_TYPE)

    def _check_auth(self, request: RecordedRequest) -> None:
        if self.api_key is None:
            return
        if request.headers.get("authorization") == f"Bearer {self.api_key}":
            return
        if self.dialect == "vllm":
            raise ApiError(401, {"error": "Unauthorized"})
        raise ApiError(
            401,
            kong_body(401) or "",
            headers={"WWW-Authenticate": "Key"},
            content_type=GATEWAY_JSON_TYPE,
        )
