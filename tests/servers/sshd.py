"""A real OpenSSH ``sshd`` on a loopback port, for the SFTP transport's tests.

It runs Debian's own ``/usr/sbin/sshd`` (apt: openssh-server) from a session temp dir with fresh
host keys, for a dedicated local account (``roktsftp``) that may log in by password or by any of
the client keys generated here. Each test session gets its own upload directory in that account's
home, so the tests can read what arrived straight from the local file system.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from deliveries.transports.base import FileTarget
from tests.processes import free_port, start, stop

SSHD = "/usr/sbin/sshd"
USERNAME = "roktsftp"
HOME = Path("/home") / USERNAME
# The account's password is random but kept (readable by root only) so that two test sessions
# running at once do not change it under each other's feet.
PASSWORD_FILE = HOME / ".rokt-test-password"
CLIENT_KEY_TYPES = ("ed25519", "rsa", "ecdsa")
HOST_KEY_TYPES = ("ed25519", "rsa")

CONFIG = """\
ListenAddress 127.0.0.1:{port}
HostKey {dir}/ssh_host_ed25519_key
HostKey {dir}/ssh_host_rsa_key
PidFile none
AllowUsers {user}
PermitRootLogin no
# Password checked against /etc/shadow by sshd itself: no PAM stack needed on a bare machine.
UsePAM no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
# sshd reads it as the user, who cannot enter pytest's temp dir: it lives in the user's home.
AuthorizedKeysFile {authorized_keys}
Subsystem sftp internal-sftp
ForceCommand internal-sftp
DisableForwarding yes
LogLevel VERBOSE
MaxStartups 50
"""


@dataclass
class Sshd:
    host: str
    port: int
    username: str
    password: str
    # OpenSSH private key texts, unencrypted, by type ("ed25519", "rsa", "ecdsa").
    client_keys: dict[str, str]
    # One more ed25519 key, encrypted with ``passphrase``.
    encrypted_key: str
    passphrase: str
    # The server's host keys by type ("ed25519", "rsa"): public key lines, ``ssh-keygen -lf``
    # fingerprints ("SHA256:...") and the public key files themselves.
    host_keys: dict[str, str]
    host_fingerprints: dict[str, str]
    host_key_files: dict[str, Path]
    # Where uploads land: ``remote_dir`` as a target names it (relative to the login directory),
    # ``upload_dir`` the same directory as an absolute local path.
    remote_dir: str
    upload_dir: Path
    config: Path
    log: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    def target(self, **overrides: object) -> FileTarget:
        """A target that logs in by password and pins the ed25519 host key."""
        defaults = {
            "host": self.host, "port": self.port, "username": self.username,
            "password": self.password, "remote_dir": self.remote_dir,
            "host_key": self.host_keys["ed25519"], "timeout": 10.0,
        }  # fmt: skip
        return FileTarget(**{**defaults, **overrides})

    def start(self) -> None:
        self.process = start([SSHD, "-D", "-e", "-f", str(self.config)], log=self.log)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"sshd exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"sshd did not accept connections on port {self.port}:\n{self.log_text()}")

    def stop(self) -> None:
        """Stop the server and cut every open connection, as a crash or reboot would.

        sshd leaves running sessions alone when the listener stops (each connection's process
        has its own session), so those are killed by process id first.
        """
        if self.process is None:
            return
        for pid in _descendants(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        stop(self.process)
        self.process = None

    def restart(self) -> None:
        """Start it again on the same port with the same keys (no-op while it runs)."""
        if self.process is None or self.process.poll() is not None:
            self.start()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _run(*args: str, stdin: str | None = None) -> str:
    try:
        result = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        pytest.fail(f"{args[0]} is missing: the SFTP tests need Debian's openssh-server")
    if result.returncode:
        pytest.fail(f"{' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result.stdout


def _keygen(path: Path, key_type: str, passphrase: str = "") -> None:
    _run("ssh-keygen", "-q", "-t", key_type, "-N", passphrase, "-C", path.name, "-f", str(path))


def _account() -> str:
    """Make sure the local account exists with a known password; return the password."""
    with open("/run/lock/rokt-sftp-test-account.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        created = subprocess.run(["id", USERNAME], capture_output=True).returncode != 0
        if created:
            _run("useradd", "--create-home", "--home-dir", str(HOME), "--shell",
                 "/usr/sbin/nologin", USERNAME)  # fmt: skip
        if PASSWORD_FILE.exists() and not created:
            return PASSWORD_FILE.read_text()
        password = secrets.token_urlsafe(18)
        _run("chpasswd", stdin=f"{USERNAME}:{password}\n")
        PASSWORD_FILE.unlink(missing_ok=True)
        PASSWORD_FILE.touch(mode=0o600)  # before the secret goes in
        PASSWORD_FILE.write_text(password)
        return password


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory):
    sshd_check()
    with sshd_running(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def sshd_check() -> None:
    """Fail unless sshd can be started here (it is installed, and we are root)."""
    if not Path(SSHD).exists():
        pytest.fail(f"{SSHD} is missing: the SFTP tests need Debian's openssh-server (apt)")
    if os.geteuid() != 0:
        pytest.fail("the SFTP tests start sshd for a local account, which needs root")


@contextlib.contextmanager
def sshd_running(directory: Path) -> Iterator[Sshd]:
    """A running sshd with fresh keys in ``directory`` (empty); stopped and cleaned up after.

    What the ``sshd`` fixture runs; benchmarks use it outside pytest.
    """
    sshd_check()
    password = _account()
    # sshd refuses to start without its privilege separation directory (made by the service
    # unit on a normal boot, absent in a container).
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)

    for key_type in HOST_KEY_TYPES:
        _keygen(directory / f"ssh_host_{key_type}_key", key_type)
    for key_type in CLIENT_KEY_TYPES:
        _keygen(directory / f"client_{key_type}", key_type)
    passphrase = secrets.token_urlsafe(12)
    _keygen(directory / "client_encrypted", "ed25519", passphrase)
    public_keys = [directory / f"client_{t}.pub" for t in [*CLIENT_KEY_TYPES, "encrypted"]]
    token = secrets.token_hex(4)
    authorized_keys = HOME / f".authorized_keys-{token}"
    authorized_keys.write_text("".join(p.read_text() for p in public_keys))
    remote_dir = f"upload-{token}"
    upload_dir = HOME / remote_dir
    upload_dir.mkdir()
    shutil.chown(upload_dir, USERNAME, USERNAME)

    port = free_port()
    config = directory / "sshd_config"
    config.write_text(
        CONFIG.format(port=port, dir=directory, user=USERNAME, authorized_keys=authorized_keys)
    )
    host_key_files = {t: directory / f"ssh_host_{t}_key.pub" for t in HOST_KEY_TYPES}
    server = Sshd(
        host="127.0.0.1", port=port, username=USERNAME, password=password,
        client_keys={t: (directory / f"client_{t}").read_text() for t in CLIENT_KEY_TYPES},
        encrypted_key=(directory / "client_encrypted").read_text(), passphrase=passphrase,
        host_keys={t: " ".join(p.read_text().split()[:2]) for t, p in host_key_files.items()},
        host_fingerprints={
            t: _run("ssh-keygen", "-lf", str(p)).split()[1] for t, p in host_key_files.items()
        },
        host_key_files=host_key_files, remote_dir=remote_dir, upload_dir=upload_dir,
        config=config, log=directory / "sshd.log",
    )  # fmt: skip
    _run(SSHD, "-t", "-f", str(config))  # a config error reads better from here than from -D
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(upload_dir, ignore_errors=True)
        authorized_keys.unlink()
