"""The HTTP layer: requests in, responses out, over real sockets (HTTP/1.1, keep-alive).

Streams go out with ``Transfer-Encoding: chunked``, one SSE event per chunk, flushed as it
is written. ``Response.drop_after`` and ``Response.abort`` cut the connection abruptly.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import socketserver
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.stub.errors import JSON_TYPE, ApiError, dumps

SSE_TYPE = "text/event-stream; charset=utf-8"


@dataclass
class RecordedRequest:
    """One request as the stub received it."""

    method: str
    path: str  # without the query string
    query: dict[str, Any]  # single values as str, repeated keys as list[str]
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, or None when empty / not JSON
    raw: bytes
    client_port: int = 0  # the client's TCP port: equal ports = one reused connection
    # time.perf_counter() stamps (benchmarks): the body read, the response's last byte sent
    received_at: float = 0.0
    answered_at: float = 0.0
    # Set when the client closed the connection before the whole answer was written (a
    # cancelled stream): what a test waits for to see that a request was really stopped.
    client_left: threading.Event = field(default_factory=threading.Event, compare=False)
    # time.perf_counter() too, like received_at: each stream event flushed (for benchmarks
    # that take the stub's own time out of a measurement)
    events_sent_at: list[float] = field(default_factory=list, compare=False)


@dataclass
class Response:
    """What a route handler answers.

    ``body``: dict/list -> compact JSON; str/bytes -> sent verbatim. ``events``: SSE events
    written one chunk each, ``token_delay`` apart (``pauses``: other waits before some).
    ``drop_after``: close the socket after that many events. ``abort``: close the connection
    without any response.
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON_TYPE
    events: list[str] | None = None
    drop_after: int | None = None
    abort: bool = False
    pauses: dict[int, float] = field(default_factory=dict)  # event index -> wait before it


Dispatcher = Callable[[RecordedRequest], Response]


def _encode(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return dumps(body).encode("utf-8")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stub"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Stream pieces go out as written (no Nagle / delayed-ACK stalls of ~40 ms).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    # ------------------------------------------------------------------------ reading

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _recorded(self, raw: bytes) -> RecordedRequest:
        url = urlsplit(self.path)
        query = {
            k: v[0] if len(v) == 1 else v
            for k, v in parse_qs(url.query, keep_blank_values=True).items()
        }
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        port = self.client_address[1] if isinstance(self.client_address, tuple) else 0
        return RecordedRequest(
            self.command, url.path, query, headers, body, raw, port, time.perf_counter()
        )

    # ------------------------------------------------------------------------ writing

    def _dispatch(self) -> None:
        request = self._recorded(self._read_body())
        try:
            response = self.server.dispatch(request)
        except ApiError as exc:
            response = Response(exc.status, exc.body_bytes, exc.headers, exc.content_type)
        except Exception as exc:  # a stub bug: answer 500 loudly instead of hanging the client
            traceback.print_exc(file=sys.stderr)
            response = Response(500, {"detail": f"stub error: {exc!r}"})
        try:
            self._send(response, request)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            request.client_left.set()
        request.answered_at = time.perf_counter()

    def _headers(self, response: Response, extra: dict[str, str]) -> None:
        self.send_response(response.status)
        headers = dict(response.headers)
        if not any(k.lower() == "content-type" for k in headers):
            self.send_header("Content-Type", response.content_type)
        for name, value in {**headers, **extra}.items():
            self.send_header(name, value)
        self.end_headers()

    def _send(self, response: Response, request: RecordedRequest) -> None:
        if response.abort:
            self._abort()
            return
        if response.events is None:
            body = _encode(response.body)
            self._headers(response, {"Content-Length": str(len(body))})
            if self.command != "HEAD" and body:
                self.wfile.write(body)
            return
        self._headers(response, {"Transfer-Encoding": "chunked"})
        delay = self.server.token_delay()
        for index, event in enumerate(response.events):
            if response.drop_after is not None and index >= response.drop_after:
                self._abort()
                return
            wait = response.pauses.get(index, delay) if index else 0.0
            if wait:
                self._pause(wait)
            data = event.encode("utf-8")
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            request.events_sent_at.append(time.perf_counter())
        if response.drop_after is not None:
            self._abort()
            return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _pause(self, seconds: float) -> None:
        """Wait between stream events; a client that closes the connection meanwhile ends
        the wait at once (ConnectionResetError), so a cancel is seen without another write."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self.connection], [], [], left)
            if not readable:
                return
            try:
                peeked = self.connection.recv(1, socket.MSG_PEEK)
            except OSError:
                peeked = b""
            if not peeked:
                raise ConnectionResetError("the client closed the connection")
            time.sleep(left)  # bytes from the client (not ours to read now): just wait
            return

    def _abort(self) -> None:
        """Close abruptly: no terminator, no further bytes."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # many clients connecting at once (socketserver's default is 5)
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        dispatch: Dispatcher,
        token_delay: Callable[[], float],
        verbose: bool = False,
    ) -> None:
        self.dispatch = dispatch
        self.token_delay = token_delay
        self.verbose = verbose
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._connections_changed = threading.Condition(self._connections_lock)
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a DNS lookup; skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def track(self, connection: socket.socket, add: bool) -> None:
        with self._connections_changed:
            (self._connections.add if add else self._connections.discard)(connection)
            self._connections_changed.notify_all()

    def wait_connections(self, predicate: Callable[[int], bool], timeout: float) -> bool:
        """Wait until ``predicate(number of open client connections)`` holds."""
        with self._connections_changed:
            return self._connections_changed.wait_for(
                lambda: predicate(len(self._connections)), timeout
            )

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError, OSError)):
            return
        super().handle_error(request, client_address)


class HttpServer:
    """A started/stopped threaded server on ``host:port`` (port 0 = pick a free one)."""

    def __init__(
        self, host: str, port: int, dispatch: Dispatcher, token_delay: Callable[[], float]
    ) -> None:
        self._address = (host, port)
        self._dispatch = dispatch
        self._token_delay = token_delay
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.verbose = False

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("stub server is not started")
        return self._server.server_port

    def open_connections(self) -> int:
        """Client connections open right now (streaming or idle keep-alive)."""
        server = self._started()
        with server._connections_lock:
            return len(server._connections)

    def wait_connections(self, predicate: Callable[[int], bool], timeout: float) -> bool:
        return self._started().wait_connections(predicate, timeout)

    def _started(self) -> _Server:
        if self._server is None:
            raise RuntimeError("stub server is not started")
        return self._server

    def start(self) -> None:
        if self._server is not None:
            return
        self._server = _Server(self._address, self._dispatch, self._token_delay, self.verbose)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"stub-http-{self._server.server_port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
