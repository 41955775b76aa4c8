"""A hostile model server on loopback: each request is answered by a script of raw writes and
pauses (headers then silence, a trickle of keep-alives, an endless stream, a line with no
end, HTML behind SSE headers...), to test what the client does when a server misbehaves.

```python
def silence(conn: Connection) -> None:
    conn.sse_headers()
    conn.pause(60)  # returns early once the client has gone


with HostileServer(silence) as server:
    ...  # MistralClient(base_url=server.base_url, ...)
    assert server.requests == 1 and server.client_left.wait(10)
```

Pauses are the server's behaviour, not the test's synchronisation: a pause ends as soon as
the client closes the connection, and ``client_left`` is the event a test waits for.
"""

from __future__ import annotations

import contextlib
import select
import socket
import socketserver
import threading
from collections.abc import Callable

Script = Callable[["Connection"], None]


class ClientGone(Exception):
    """The client closed the connection (what a script stops on)."""


class Connection:
    """One request's connection, as a script sees it."""

    def __init__(self, sock: socket.socket, head: bytes) -> None:
        self.sock = sock
        self.head = head  # the request line and headers, as received

    @property
    def path(self) -> str:
        return self.head.split(b" ", 2)[1].decode("latin-1")

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise ClientGone() from exc

    def headers(self, content_type: str, status: str = "200 OK", chunked: bool = True) -> None:
        framing = "Transfer-Encoding: chunked\r\n" if chunked else "Connection: close\r\n"
        self.send(f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n{framing}\r\n".encode())

    def sse_headers(self) -> None:
        self.headers("text/event-stream; charset=utf-8")

    def chunk(self, data: bytes) -> None:
        """One piece of a chunked body."""
        if data:
            self.send(b"%x\r\n%s\r\n" % (len(data), data))

    def end(self) -> None:
        self.send(b"0\r\n\r\n")

    def pause(self, seconds: float) -> None:
        """Wait ``seconds``, or until the client closes the connection (then ClientGone)."""
        readable, _, _ = select.select([self.sock], [], [], seconds)
        if readable and not self._peek():
            raise ClientGone()

    def _peek(self) -> bytes:
        try:
            return self.sock.recv(1, socket.MSG_PEEK)
        except OSError:
            return b""


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = self._read_head(sock)
        if head is None:
            return
        self.server.record(head)
        connection = Connection(sock, head)
        try:
            self.server.script(connection)
            # The script is over: wait for the client to hang up (bounded).
            connection.pause(30)
        except ClientGone:
            self.server.client_left.set()
        finally:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _read_head(self, sock: socket.socket) -> bytes | None:
        data = b""
        while b"\r\n\r\n" not in data:
            piece = sock.recv(65536)
            if not piece:
                return None
            data += piece
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip() or b"0")
        while len(rest) < length:  # the body is read and dropped
            piece = sock.recv(65536)
            if not piece:
                break
            rest += piece
        return head


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, script: Script) -> None:
        self.script = script
        self.heads: list[bytes] = []
        self.client_left = threading.Event()
        self._lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def record(self, head: bytes) -> None:
        with self._lock:
            self.heads.append(head)


class HostileServer:
    """Serves every request with ``script(connection)``; ``requests`` counts them (per path
    in ``paths``), ``client_left`` is set once a client hung up on a script."""

    def __init__(self, script: Script) -> None:
        self._server = _Server(script)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def paths(self) -> list[str]:
        with self._server._lock:
            return [h.split(b" ", 2)[1].decode("latin-1") for h in self._server.heads]

    @property
    def requests(self) -> int:
        """Chat requests received (the dialect probe, GET /models, is not counted)."""
        return sum(1 for p in self.paths if p.endswith("/chat/completions"))

    @property
    def heads(self) -> list[bytes]:
        with self._server._lock:
            return list(self._server.heads)

    @property
    def client_left(self) -> threading.Event:
        return self._server.client_left
