"""The clients' endpoints for bench/realtime.py, in a process of their own (so answering never
takes the GIL from the bench driver or the worker): an asyncio HTTP/1.1 server with
keep-alive, one port answering 200 at once and one answering 200 after ``--slow`` seconds.

Each request is recorded as (arrival time, webhook-id, port kind), the arrival time being
``time.time()`` when its body has been read. ``GET /_dump`` (either port) answers every record
taken since the previous dump as JSON lines ``[time, id, kind]`` and forgets them;
``GET /_count`` answers how many are waiting to be dumped.

Run: python bench/_realtime_receiver.py [--slow 2.0]; it prints ``<fast port> <slow port>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import time

_OK = b'{"ok":true}'
_ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(_OK)).encode() + b"\r\n\r\n" + _OK
)  # fmt: skip
_MAX_HEAD = 64 * 1024


class Recorder:
    def __init__(self) -> None:
        self.records: list[tuple[float, str, str]] = []


class _Protocol(asyncio.Protocol):
    def __init__(self, recorder: Recorder, kind: str, delay: float) -> None:
        self.recorder = recorder
        self.kind = kind
        self.delay = delay
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.busy = False  # a slow answer is pending: parse nothing more until it is sent

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._parse()

    def _parse(self) -> None:
        while not self.busy:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > _MAX_HEAD:
                    self.transport.close()
                return
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            length, msg_id = 0, ""
            for line in head[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "webhook-id":
                    msg_id = value.strip()
            if len(self.buffer) < end + 4 + length:
                return  # the body is still coming
            arrived = time.time()
            self.buffer = self.buffer[end + 4 + length :]
            target = head[0].split(" ")[1] if " " in head[0] else ""
            if target.startswith("/_"):
                self._control(target)
                continue
            self.recorder.records.append((arrived, msg_id, self.kind))
            if self.delay:
                self.busy = True
                asyncio.get_running_loop().call_later(self.delay, self._answer_late)
                return
            self.transport.write(_ANSWER)

    def _answer_late(self) -> None:
        self.busy = False
        if not self.transport.is_closing():
            self.transport.write(_ANSWER)
            self._parse()

    def _control(self, target: str) -> None:
        if target.startswith("/_dump"):
            records, self.recorder.records = self.recorder.records, []
            body = "".join(json.dumps(r) + "\n" for r in records).encode()
        else:
            body = str(len(self.recorder.records)).encode()
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )


async def _serve(slow: float) -> None:
    recorder = Recorder()
    loop = asyncio.get_running_loop()
    fast = await loop.create_server(lambda: _Protocol(recorder, "fast", 0.0), "127.0.0.1", 0,
                                    backlog=1024)  # fmt: skip
    slow_server = await loop.create_server(lambda: _Protocol(recorder, "slow", slow),
                                           "127.0.0.1", 0, backlog=1024)  # fmt: skip
    ports = [s.sockets[0].getsockname()[1] for s in (fast, slow_server)]
    print(*ports, flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=float, default=2.0, help="seconds the slow port takes")
    args = parser.parse_args()
    asyncio.run(_serve(args.slow))


if __name__ == "__main__":
    main()
