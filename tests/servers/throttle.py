"""TCP proxies on loopback: the plumbing they share, and one that slows the upload direction
down, so that "mid-upload" lasts long enough to act in."""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class TcpProxy:
    """Accepts on a free loopback port, connects each client to ``target``; a subclass moves
    the bytes (``_connect``)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
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

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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
            self._connect(client, server)

    def _connect(self, client: socket.socket, server: socket.socket) -> None:
        raise NotImplementedError


class ThrottledProxy(TcpProxy):
    def __init__(self, host: str, port: int, *, upload_rate: float) -> None:
        self.upload_rate = upload_rate  # bytes per second, client to server
        super().__init__(host, port)

    def _connect(self, client: socket.socket, server: socket.socket) -> None:
        threading.Thread(target=self._pipe, args=(client, server, self.upload_rate),
                         daemon=True).start()  # fmt: skip
        threading.Thread(target=self._pipe, args=(server, client, None), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, rate: float | None) -> None:
        try:
            while True:
                data = source.recv(65536 if rate is None else 16384)
                if not data:
                    break
                if rate:
                    time.sleep(len(data) / rate)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
