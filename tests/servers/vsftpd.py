"""A real vsftpd on loopback for the FTPS transport's tests (Debian's package; needs root).

It enforces what FTPS servers in the field enforce and pyftpdlib does not (PITFALLS, FTPS):
TLS for login and data, and TLS session reuse on data connections. Logins go through PAM as a
dedicated local user, ``roktftp``. Each server uploads into its own directory, so test sessions
running side by side on one machine do not see each other's files.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from deliveries.transports.base import FileTarget
from tests import processes
from tests.servers.tls import make_pki

VSFTPD = "/usr/sbin/vsftpd"
HOST = "127.0.0.1"
USER = "roktftp"
# Shared by every test session on the machine: the user's password and the lock that makes
# creating the user and setting its password happen once, not once per concurrent session.
STATE = Path(tempfile.gettempdir()) / "rokt-vsftpd"
PASSIVE_PORTS = 10


@dataclass
class Vsftpd:
    host: str
    port: int
    implicit: bool
    ca_file: str  # the test CA that signed the server certificate
    fingerprint: str  # of the server certificate, "AB:CD:..."
    user: str
    password: str
    upload_dir: Path  # absolute; no chroot, so it is also the remote path
    config: Path
    log: Path  # vsftpd's own output (startup errors: "500 OOPS: ...")
    protocol_log: Path  # every command and reply (log_ftp_protocol)
    process: subprocess.Popen | None = field(default=None, repr=False)

    def target(self, **overrides) -> FileTarget:
        settings = {
            "host": self.host,
            "port": self.port,
            "username": self.user,
            "password": self.password,
            "remote_dir": str(self.upload_dir),
            "tls_mode": "implicit" if self.implicit else "explicit",
            "ca_file": self.ca_file,
            "timeout": 10.0,
        }
        return FileTarget(**{**settings, **overrides})

    def start(self) -> None:
        """Start (again, on the same port) unless running; fail the test if it will not start."""
        if self.process is not None and self.process.poll() is None:
            return
        # vsftpd reports startup errors ("500 OOPS: ...") on file descriptor 0, as it would
        # to an inetd client: give it the log there too.
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [VSFTPD, str(self.config)], stdin=log, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # a process group of its own, for stop()
            )  # fmt: skip
        deadline = time.monotonic() + 10
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                processes.stop(self.process)
                pytest.fail(f"vsftpd did not start on {self.host}:{self.port}:\n{self.logs()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the listener and every connection now, as a crash or a lost link would."""
        if self.process is None or self.process.poll() is not None:
            return
        # vsftpd gives each connection a session of its own (setsid), so they outlive the
        # listener's process group and would finish an upload "cut" by stopping the server.
        # Freeze the listener (no new connections), kill its descendants, then the listener.
        os.kill(self.process.pid, signal.SIGSTOP)
        for pid in _descendants(self.process.pid):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        processes.stop(self.process, signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def protocol_log_text(self) -> str:
        return self.protocol_log.read_text(errors="replace") if self.protocol_log.exists() else ""

    def logs(self) -> str:
        def read(path: Path) -> str:
            return path.read_text(errors="replace")[-4000:] if path.exists() else "(none)"

        code = self.process.poll() if self.process else None
        return (
            f"exit code: {code}\nconfig {self.config}:\n{self.config.read_text()}\n"
            f"output:\n{read(self.log)}\nprotocol log:\n{read(self.protocol_log)}"
        )

    def _answers(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as sock:
                # Implicit TLS: accepting the connection is all a listener says before TLS.
                return self.implicit or sock.recv(3) == b"220"
        except OSError:
            return False


@pytest.fixture(scope="session")
def vsftpd(tmp_path_factory) -> Iterator[Vsftpd]:
    """vsftpd with explicit FTPS (AUTH TLS)."""
    with vsftpd_running(tmp_path_factory.mktemp("vsftpd"), implicit=False) as server:
        yield server


@pytest.fixture(scope="session")
def vsftpd_implicit(tmp_path_factory) -> Iterator[Vsftpd]:
    """vsftpd with implicit FTPS: TLS from the first byte."""
    with vsftpd_running(tmp_path_factory.mktemp("vsftpd-implicit"), implicit=True) as server:
        yield server


@contextmanager
def vsftpd_running(directory: Path, *, implicit: bool) -> Iterator[Vsftpd]:
    """A running vsftpd configured in ``directory`` (empty); stopped and cleaned up after.

    What the fixtures run; benchmarks use it outside pytest.
    """
    if os.geteuid() != 0:
        pytest.fail("vsftpd tests need root: vsftpd binds, runs PAM and switches users as root")
    if not Path(VSFTPD).exists():
        pytest.fail(f"{VSFTPD} is missing: apt-get install vsftpd")
    password, home = _system_user()
    upload_dir = Path(tempfile.mkdtemp(prefix="session-", dir=home / "upload"))
    shutil.chown(upload_dir, USER, USER)
    pki = make_pki(directory / "pki")
    empty = directory / "empty"  # secure_chroot_dir: empty and not writable by the user
    empty.mkdir(mode=0o755)
    server = Vsftpd(
        host=HOST, port=processes.free_port(), implicit=implicit, ca_file=str(pki.ca.cert),
        fingerprint=pki.server.fingerprint, user=USER, password=password,
        upload_dir=upload_dir, config=directory / "vsftpd.conf", log=directory / "vsftpd.out",
        protocol_log=directory / "vsftpd.log",
    )  # fmt: skip
    first, last = _free_port_range(PASSIVE_PORTS)
    settings = {
        "listen": "YES",
        "listen_ipv6": "NO",
        "listen_address": HOST,
        "listen_port": server.port,
        "background": "NO",
        "anonymous_enable": "NO",
        "local_enable": "YES",
        "write_enable": "YES",
        "local_umask": "022",
        "chroot_local_user": "NO",
        "pasv_enable": "YES",
        "pasv_address": HOST,
        "pasv_min_port": first,
        "pasv_max_port": last,
        "port_enable": "NO",
        "connect_from_port_20": "NO",
        # Debian's PAM service: pam_shells wants the user's shell in /etc/shells (it is /bin/sh)
        # and pam_listfile refuses users in /etc/ftpusers (root and system accounts).
        "pam_service_name": "vsftpd",
        "secure_chroot_dir": empty,
        # Its seccomp filter has been known to kill sessions inside containers.
        "seccomp_sandbox": "NO",
        "ssl_enable": "YES",
        "implicit_ssl": "YES" if implicit else "NO",
        "require_ssl_reuse": "YES",  # the default, spelt out: the tests depend on it
        "force_local_logins_ssl": "YES",
        "force_local_data_ssl": "YES",
        "rsa_cert_file": pki.server.cert,
        "rsa_private_key_file": pki.server.key,
        "xferlog_enable": "YES",
        "vsftpd_log_file": server.protocol_log,
        "log_ftp_protocol": "YES",
    }
    server.config.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(upload_dir, ignore_errors=True)


def _system_user() -> tuple[str, Path]:
    """Create ``roktftp`` once (a random password, an upload directory it owns); return both."""
    STATE.mkdir(mode=0o700, exist_ok=True)
    password_file = STATE / "password"
    with (STATE / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # other test sessions wait; released on close
        try:
            pwd.getpwnam(USER)
        except KeyError:
            _run(["useradd", "--create-home", "--shell", "/bin/sh", USER])
            password_file.unlink(missing_ok=True)
        if not password_file.exists():
            password = secrets.token_urlsafe(18)
            _run(["chpasswd"], stdin=f"{USER}:{password}\n")
            password_file.write_text(password)
            password_file.chmod(0o600)
        home = Path(pwd.getpwnam(USER).pw_dir)
        (home / "upload").mkdir(exist_ok=True)
        shutil.chown(home / "upload", USER, USER)
        return password_file.read_text(), home


def _run(args: list[str], stdin: str | None = None) -> None:
    result = subprocess.run(args, input=stdin, capture_output=True, text=True, check=False)
    if result.returncode:
        pytest.fail(f"{' '.join(args)} failed ({result.returncode}): {result.stderr}")


def _free_port_range(count: int) -> tuple[int, int]:
    """``count`` consecutive free loopback ports, for vsftpd's passive data connections."""
    for _ in range(100):
        first = processes.free_port()
        if first + count > 65536:
            continue
        sockets = [socket.socket() for _ in range(count)]
        try:
            for offset, sock in enumerate(sockets):
                sock.bind((HOST, first + offset))
        except OSError:
            continue
        else:
            return first, first + count - 1
        finally:
            for sock in sockets:
                sock.close()
    pytest.fail(f"found no {count} consecutive free ports on {HOST}")


def _descendants(root: int) -> list[int]:
    """Process ids below ``root``, from /proc (parent links, which are lost once it dies)."""
    children: dict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError):
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            children[parent].append(int(stat.parent.name))
    found, pending = [], [root]
    while pending:
        kids = children[pending.pop()]
        found += kids
        pending += kids
    return found
