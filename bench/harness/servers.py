"""Shared by the file-delivery benchmarks: the test suite's sshd and vsftpd started outside
pytest, the OpenSSH and curl command lines to compare with, and a proxy that adds latency
without limiting bandwidth."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from harness.database import ROOT  # noqa: F401  (puts the project on sys.path)
from tests.servers.throttle import TcpProxy


@contextlib.contextmanager
def servers() -> Iterator[tuple[object, object]]:
    """The test suite's sshd and (explicit FTPS) vsftpd, running; both stopped after."""
    from tests.servers.sshd import sshd_running
    from tests.servers.vsftpd import vsftpd_running

    directory = Path(tempfile.mkdtemp(prefix="bench-servers-"))
    try:
        (directory / "sshd").mkdir()
        (directory / "vsftpd").mkdir()
        with (
            sshd_running(directory / "sshd") as sshd,
            vsftpd_running(directory / "vsftpd", implicit=False) as vsftpd,
        ):
            yield sshd, vsftpd
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class OpenSsh:
    """``sftp -b`` (OpenSSH's client, its defaults) against the test sshd, by key."""

    ALIAS = "bench-sshd"

    def __init__(self, sshd, directory: Path) -> None:
        self.sshd = sshd
        self.key = directory / "openssh_client_key"
        self.key.write_text(sshd.client_keys["ed25519"])
        self.key.chmod(0o600)
        self.known_hosts = directory / "known_hosts"
        self.known_hosts.write_text(f"{self.ALIAS} {sshd.host_keys['ed25519']}\n")
        self.batch = directory / "sftp_batch"

    def put(self, local: Path, name: str, *, port: int | None = None) -> None:
        """Upload ``local`` into the sshd's upload directory as ``name``."""
        self.batch.write_text(f'put "{local}" "{self.sshd.remote_dir}/{name}"\n')
        subprocess.run([
            "sftp", "-q", "-b", str(self.batch), "-F", "none",
            "-P", str(port or self.sshd.port), "-i", str(self.key),
            "-o", "IdentitiesOnly=yes", "-o", "PasswordAuthentication=no",
            "-o", f"HostKeyAlias={self.ALIAS}", "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "CheckHostIP=no",
            f"{self.sshd.username}@{self.sshd.host}",
        ], check=True, stdout=subprocess.DEVNULL)  # fmt: skip


def curl_put(vsftpd, local: Path, name: str) -> None:
    """curl's FTPS upload (explicit TLS, at most 1.2, the test CA) into the server's directory."""
    home = vsftpd.upload_dir.parent.parent  # no chroot: URL paths are relative to the home
    path = vsftpd.upload_dir.relative_to(home)
    subprocess.run([
        "curl", "-sS", "--ssl-reqd", "--tls-max", "1.2", "--cacert", vsftpd.ca_file,
        "--user", f"{vsftpd.user}:{vsftpd.password}", "-T", str(local),
        f"ftp://{vsftpd.host}:{vsftpd.port}/{path}/{name}",
    ], check=True)  # fmt: skip


class DelayProxy(TcpProxy):
    """A loopback TCP proxy that delays every chunk by ``delay`` seconds each way, and nothing
    else: a reader thread stamps each chunk with its due time and queues it, a sender thread
    forwards it when that time comes. The reader never waits on the sender, so the bytes in
    flight are limited by the endpoints' windows, as over a long link, not by the proxy."""

    CHUNK = 256 * 1024

    def __init__(self, host: str, port: int, *, delay: float) -> None:
        self.delay = delay
        super().__init__(host, port)

    def _connect(self, client: socket.socket, server: socket.socket) -> None:
        for source, sink in ((client, server), (server, client)):
            queue: deque[tuple[float, bytes]] = deque()
            ready = threading.Condition()
            threading.Thread(target=self._read, args=(source, queue, ready),
                             daemon=True).start()  # fmt: skip
            threading.Thread(target=self._send, args=(sink, queue, ready),
                             daemon=True).start()  # fmt: skip

    def _read(self, source: socket.socket, queue: deque, ready: threading.Condition) -> None:
        data = b""
        try:
            while data := source.recv(self.CHUNK):
                with ready:
                    queue.append((time.monotonic() + self.delay, data))
                    ready.notify()
        except OSError:
            data = b""
        finally:
            with ready:
                queue.append((time.monotonic() + self.delay, b""))  # end of stream
                ready.notify()

    def _send(self, sink: socket.socket, queue: deque, ready: threading.Condition) -> None:
        try:
            while True:
                with ready:
                    while not queue:
                        ready.wait()
                    due, data = queue.popleft()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if not data:
                    sink.shutdown(socket.SHUT_WR)
                    return
                sink.sendall(data)
        except OSError:
            pass
