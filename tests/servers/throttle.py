"""A TCP proxy on loopback that slows a connection down: a rate limit on the upload direction
and an added one-way delay both ways. Makes "mid-upload" last long enough to act in, and
stands in for a distant server in benchmarks."""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class ThrottledProxy:
    def __init__(
        self, host: str, port: int, *, upload_rate: float | None = None, delay: float = 0.0
    ) -> None:
        self.target = (host, port)
        self.upload_rate = upload_rate  # bytes per second, client to server
        self.delay = delay  # seconds added to each chunk, each way
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(None)
                self._sockets.append(sock)
            threading.Thread(target=self._pipe, args=(client, server, self.upload_rate),
                             daemon=True).start()  # fmt: skip
            threading.Thread(target=self._pipe, args=(server, client, None), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, rate: float | None) -> None:
        try:
            while True:
                data = source.recv(65536 if rate is None else 16384)
                if not data:
                    break
                if self.delay:
                    time.sleep(self.delay)
                if rate:
                    time.sleep(len(data) / rate)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
