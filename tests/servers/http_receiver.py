"""A client's API endpoint for tests: records every request and answers as the test says.

``http_receiver`` (HTTP) and ``https_receiver`` (HTTPS, certificate for 127.0.0.1 and
localhost signed by a test CA: pass ``receiver.ca_file`` as the request's ``ca_file``) start a
``ThreadingHTTPServer`` on a free loopback port for one test. HTTP/1.1 with keep-alive, so
connection reuse can be counted (``receiver.connections``).

The answer comes from ``receiver.respond(recorded) -> (status, headers, body)``; ``body`` is
bytes, or an iterable of bytes written and flushed one by one (with a Content-Length header of
its total) to answer slowly. Helpers set the common behaviours: ``slow``, ``status``,
``redirect``, ``fail_randomly``, ``drip``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.processes import free_port
from tests.servers.tls import TestPki, make_pki

Headers = list[tuple[str, str]]
Answer = tuple[int, Headers, bytes | Iterable[bytes]]

OK_BODY = json.dumps({"ok": True}).encode()
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)  # pass as ``allowed_networks`` to reach it


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # without the query string
    query: str  # without the "?"
    headers: Headers  # as received: order and case kept
    body: bytes
    received_at: float  # time.monotonic() when the body had been read
    connection: int  # 1 for the first TCP connection accepted, 2 for the next...

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def ok(request: RecordedRequest) -> Answer:
    return 200, [("Content-Type", "application/json")], OK_BODY


class HttpReceiver:
    def __init__(self, ssl_context: ssl.SSLContext | None = None, ca_file: str = "") -> None:
        self.respond: Callable[[RecordedRequest], Answer] = ok
        self.ca_file = ca_file
        self.scheme = "https" if ssl_context else "http"
        self.allowed_networks = LOOPBACK
        self._requests: list[RecordedRequest] = []
        self._changed = threading.Condition()
        self._connections = 0
        self._sockets: list[socket.socket] = []
        self._stopping = threading.Event()  # ends the sleeps of slow answers at teardown
        self.port = free_port()
        self._server = _Server(("127.0.0.1", self.port), _Handler, self, ssl_context)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._changed:
            return list(self._requests)

    @property
    def connections(self) -> int:
        """TCP connections accepted so far."""
        with self._changed:
            return self._connections

    def wait_for(self, count: int, timeout: float = 5) -> list[RecordedRequest]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._requests) >= count, timeout):
                raise AssertionError(f"{len(self._requests)} requests arrived, not {count}")
            return list(self._requests)

    # Behaviours: each replaces ``respond``.

    def status(self, code: int, headers: Headers = (), body: bytes = b"") -> None:
        self.respond = lambda request: (code, list(headers), body)

    def redirect(self, location: str, code: int = 302) -> None:
        self.status(code, [("Location", location)])

    def slow(self, seconds: float, then: Callable[[RecordedRequest], Answer] = ok) -> None:
        def respond(request: RecordedRequest) -> Answer:
            self._stopping.wait(seconds)
            return then(request)

        self.respond = respond

    def drip(self, body: bytes, every: float, piece: int = 1) -> None:
        """200 with a Content-Length of ``len(body)``, sent ``piece`` bytes ``every`` seconds."""

        def pieces() -> Iterator[bytes]:
            for start in range(0, len(body), piece):
                if self._stopping.wait(every):
                    return
                yield body[start : start + piece]

        self.respond = lambda request: (200, [("Content-Length", str(len(body)))], pieces())

    def fail_randomly(self, fraction: float, seed: int = 0, code: int = 500) -> None:
        """Answer ``code`` to about ``fraction`` of the requests, reproducibly for ``seed``."""
        rng = random.Random(seed)
        lock = threading.Lock()

        def respond(request: RecordedRequest) -> Answer:
            with lock:
                failing = rng.random() < fraction
            if failing:
                return code, [("Content-Type", "application/json")], b'{"ok": false}'
            return ok(request)

        self.respond = respond

    def drop_connections(self) -> None:
        """End every open connection, as a server does with idle kept-alive ones."""
        with self._changed:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        # Kept-alive connections end too, so no client pool keeps a socket to a dead server.
        self.drop_connections()
        self._thread.join(5)

    # Called by the handler threads.

    def _connected(self, sock: socket.socket) -> int:
        with self._changed:
            self._connections += 1
            self._sockets.append(sock)
            return self._connections

    def _record(self, request: RecordedRequest) -> None:
        with self._changed:
            self._requests.append(request)
            self._changed.notify_all()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, handler, receiver: HttpReceiver, ssl_context) -> None:
        self.receiver = receiver
        self.ssl_context = ssl_context
        super().__init__(address, handler)

    def finish_request(self, request, client_address) -> None:
        # TLS handshake in the connection's own thread, not in the accepting one.
        if self.ssl_context is not None:
            request.settimeout(5)
            try:
                request = self.ssl_context.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                return  # the client refused our certificate: what some tests want
            request.settimeout(None)
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address) -> None:
        pass  # clients that hang up mid-answer are what some tests do


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server: _Server
    timeout = 30  # an idle kept-alive connection ends after this

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle holds the body back for
        # the client's delayed ACK (40 ms) on a kept-alive connection.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connection_number = self.server.receiver._connected(self.connection)

    def log_message(self, format, *args) -> None:
        pass

    def _answer(self) -> None:
        receiver = self.server.receiver
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        recorded = RecordedRequest(
            method=self.command, path=path, query=query, headers=list(self.headers.items()),
            body=body, received_at=time.monotonic(), connection=self.connection_number,
        )  # fmt: skip
        receiver._record(recorded)
        status, headers, content = receiver.respond(recorded)
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if isinstance(content, bytes | bytearray):
            if not any(name.lower() == "content-length" for name, _ in headers):
                self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)
        else:
            self.end_headers()
            for piece in content:
                self.wfile.write(piece)
                self.wfile.flush()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="session")
def http_test_pki(tmp_path_factory) -> TestPki:
    return make_pki(Path(tmp_path_factory.mktemp("http-pki")))


@pytest.fixture
def https_receiver(http_test_pki: TestPki) -> Iterator[HttpReceiver]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(http_test_pki.server.cert, http_test_pki.server.key)
    receiver = HttpReceiver(context, ca_file=str(http_test_pki.ca.cert))
    yield receiver
    receiver.close()
