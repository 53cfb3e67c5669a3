"""The SFTP transport against a real OpenSSH sshd on loopback (no database)."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from deliveries.transports import sftp
from deliveries.transports.base import PermanentTransportError, TransportError
from tests.processes import free_port, wait_for
from tests.servers.sshd import Sshd, sshd  # noqa: F401


@pytest.fixture
def local_file(tmp_path):
    def make(size: int, name: str = "batch.csv") -> Path:
        path = tmp_path / name
        path.write_bytes(os.urandom(size))
        return path

    return make


@pytest.fixture
def server(sshd: Sshd):  # noqa: F811
    """The session's sshd, running, with an empty upload directory."""
    sshd.restart()
    for path in sshd.upload_dir.iterdir():
        path.unlink()
    return sshd


def upload(target, path: Path, name: str | None = None, **kwargs) -> int:
    with sftp.connect(target) as session:
        return session.upload(path, name or path.name, **kwargs)


def test_it_uploads_with_a_password(server, local_file):
    path = local_file(300_000)

    size = upload(server.target(), path)

    assert size == 300_000
    assert (server.upload_dir / "batch.csv").read_bytes() == path.read_bytes()
    assert os.listdir(server.upload_dir) == ["batch.csv"]


@pytest.mark.parametrize("key_type", ["ed25519", "rsa", "ecdsa"])
def test_it_uploads_with_a_private_key(server, local_file, key_type):
    path = local_file(70_000)
    target = server.target(password="", private_key=server.client_keys[key_type])

    assert upload(target, path, "keyed.csv") == 70_000
    assert (server.upload_dir / "keyed.csv").read_bytes() == path.read_bytes()


def test_it_uploads_with_an_encrypted_key_and_its_passphrase(server, local_file):
    target = server.target(
        password="", private_key=server.encrypted_key, passphrase=server.passphrase
    )

    assert upload(target, local_file(1000)) == 1000


@pytest.mark.parametrize(
    ("key_type", "key_format", "encrypted"),
    [
        ("rsa", serialization.PrivateFormat.TraditionalOpenSSL, False),
        ("ecdsa", serialization.PrivateFormat.TraditionalOpenSSL, True),
        ("ed25519", serialization.PrivateFormat.PKCS8, True),
    ],
)
def test_it_reads_pem_keys(server, local_file, key_type, key_format, encrypted):
    key = serialization.load_ssh_private_key(server.client_keys[key_type].encode(), None)
    encryption = (
        serialization.BestAvailableEncryption(b"pem-secret")
        if encrypted
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, key_format, encryption).decode()
    target = server.target(
        password="", private_key=pem, passphrase="pem-secret" if encrypted else ""
    )

    assert upload(target, local_file(1000)) == 1000


def test_it_replaces_a_file_of_the_same_name(server, local_file):
    (server.upload_dir / "batch.csv").write_bytes(b"yesterday's batch, much longer " * 1000)
    path = local_file(5000)

    upload(server.target(), path)

    assert (server.upload_dir / "batch.csv").read_bytes() == path.read_bytes()
    assert os.listdir(server.upload_dir) == ["batch.csv"]


def test_it_replaces_by_remove_and_rename_where_posix_rename_is_unsupported(
    server, local_file, monkeypatch
):
    def unsupported(self, old, new):
        raise OSError("Operation unsupported")

    monkeypatch.setattr(paramiko.SFTPClient, "posix_rename", unsupported)
    (server.upload_dir / "batch.csv").write_bytes(b"old")
    path = local_file(5000)

    upload(server.target(), path)

    assert (server.upload_dir / "batch.csv").read_bytes() == path.read_bytes()
    assert os.listdir(server.upload_dir) == ["batch.csv"]


def test_a_failed_posix_rename_keeps_the_existing_file(server, local_file, monkeypatch):
    def denied(self, old, new):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(paramiko.SFTPClient, "posix_rename", denied)
    (server.upload_dir / "batch.csv").write_bytes(b"old")

    with pytest.raises(TransportError, match="Permission denied"):
        upload(server.target(), local_file(5000))

    assert os.listdir(server.upload_dir) == ["batch.csv"]  # and the temporary file is gone
    assert (server.upload_dir / "batch.csv").read_bytes() == b"old"


def test_it_uploads_into_an_absolute_remote_dir_and_lists_it(server, local_file):
    target = server.target(remote_dir=str(server.upload_dir))
    path = local_file(10)

    with sftp.connect(target) as session:
        session.upload(path, "a.csv")
        session.upload(path, "b.csv")
        assert sorted(session.listdir()) == ["a.csv", "b.csv"]


def test_it_reports_progress_up_to_the_whole_size(server, local_file):
    seen: list[int] = []

    upload(server.target(), local_file(3 * 1024 * 1024 + 5), progress=seen.append)

    assert seen == sorted(seen) and seen[-1] == 3 * 1024 * 1024 + 5


def test_a_missing_remote_dir_is_a_permanent_error(server):
    with pytest.raises(PermanentTransportError, match="no-such-dir"):
        sftp.connect(server.target(remote_dir="no-such-dir"))


def test_a_name_with_a_slash_is_refused(server, local_file):
    with sftp.connect(server.target()) as session, pytest.raises(PermanentTransportError):
        session.upload(local_file(10), "../escape.csv")


# Host key pinning


def test_a_pinned_rsa_key_line_makes_the_server_present_its_rsa_key(server, local_file):
    upload(server.target(host_key=server.host_keys["rsa"]), local_file(10))


def test_a_pinned_sha256_fingerprint_is_accepted(server, local_file):
    target = server.target(host_key=server.host_fingerprints["ed25519"])

    assert upload(target, local_file(10)) == 10


def test_a_whole_ssh_keygen_line_is_accepted_as_a_pin(server, local_file):
    printed = subprocess.run(
        ["ssh-keygen", "-lf", str(server.host_key_files["ed25519"])],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip

    assert upload(server.target(host_key=printed), local_file(10)) == 10


def test_a_known_hosts_line_is_accepted(server, local_file):
    line = f"[127.0.0.1]:{server.port} {server.host_keys['ed25519']} comment"

    assert upload(server.target(host_key=line), local_file(10)) == 10


def other_ed25519_key_line() -> str:
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


@pytest.mark.parametrize("pin", ["line", "fingerprint"])
def test_a_wrong_host_key_is_refused_before_any_credential_is_sent(server, monkeypatch, pin):
    wrong = other_ed25519_key_line()
    if pin == "fingerprint":
        wrong = sftp.fetch_host_key(server.host, server.port).fingerprint[:-4] + "AAAA"
    attempts: list[str] = []
    for method in ("auth_password", "auth_publickey", "auth_interactive"):
        monkeypatch.setattr(
            paramiko.Transport, method, lambda self, *a, m=method, **k: attempts.append(m)
        )
    log_start = len(server.log_text())

    with pytest.raises(PermanentTransportError) as raised:
        sftp.connect(server.target(host_key=wrong, private_key=server.client_keys["rsa"]))

    message = str(raised.value)
    assert "host key" in message and "does not match" in message
    assert server.host_fingerprints["ed25519"] in message  # what the server presented
    assert sftp.host_key_pin_parse(wrong)[0] in message  # what was pinned
    assert attempts == []
    wait_for(lambda: "[preauth]" in server.log_text()[log_start:], timeout=5, what="sshd log")
    assert "password" not in server.log_text()[log_start:].lower()


def test_a_fingerprint_of_a_key_the_server_does_not_present_first_says_what_to_do(server):
    with pytest.raises(PermanentTransportError, match="pin the full key line"):
        sftp.connect(server.target(host_key=server.host_fingerprints["rsa"]))


def test_an_empty_pin_is_refused(server):
    with pytest.raises(PermanentTransportError, match="no host key pinned"):
        sftp.connect(server.target(host_key=""))


def test_fetch_host_key_gives_what_ssh_keygen_prints(server):
    key = sftp.fetch_host_key(server.host, server.port)

    printed = subprocess.run(
        ["ssh-keygen", "-lf", str(server.host_key_files["ed25519"])],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert key.fingerprint == printed[1]
    assert key.key_type == "ssh-ed25519"
    assert key.openssh == server.host_keys["ed25519"]


# Refusals and network errors


def test_a_wrong_password_is_a_permanent_error(server):
    with pytest.raises(PermanentTransportError, match="authentication refused") as refused:
        sftp.connect(server.target(password="not-the-password"))
    # Client users read delivery errors; the login name is not theirs to see.
    assert server.username not in str(refused.value)


def test_an_unknown_key_is_a_permanent_error(server):
    stranger = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    with pytest.raises(PermanentTransportError, match="authentication refused"):
        sftp.connect(server.target(password="", private_key=stranger.decode()))


@pytest.mark.parametrize(
    ("passphrase", "private_key", "message"),
    [
        ("wrong", "encrypted", "passphrase of the private key is wrong"),
        ("", "encrypted", "encrypted and no passphrase"),
        ("", "garbage", "cannot be read"),
    ],
)
def test_an_unreadable_private_key_is_a_permanent_error(server, passphrase, private_key, message):
    text = server.encrypted_key if private_key == "encrypted" else "-----BEGIN nonsense"
    target = server.target(private_key=text, passphrase=passphrase)

    with pytest.raises(PermanentTransportError, match=message):
        sftp.connect(target)


def test_a_closed_port_is_a_temporary_error(server):
    port = free_port()

    with pytest.raises(TransportError, match=f"127.0.0.1:{port}") as raised:
        sftp.connect(server.target(port=port))
    assert not raised.value.permanent
    with pytest.raises(TransportError) as raised:
        sftp.fetch_host_key("127.0.0.1", port)
    assert not raised.value.permanent


def test_a_server_that_never_answers_times_out_as_a_temporary_error(server):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        started = time.monotonic()

        with pytest.raises(TransportError, match=f"127.0.0.1:{port}") as raised:
            sftp.connect(server.target(port=port, timeout=1))

    assert not raised.value.permanent
    assert time.monotonic() - started < 5


# No partial file under the final name


def test_a_file_never_shows_under_its_final_name_until_complete(server, local_file):
    size = 50 * 1024 * 1024
    path = local_file(size)
    final, part = server.upload_dir / "batch.csv", server.upload_dir / ".batch.csv.part"
    seen = {"part": 0, "final": 0, "wrong sizes": []}
    done = threading.Event()

    def watch():
        while not done.is_set():
            if part.exists():
                seen["part"] += 1
            try:
                final_size = final.stat().st_size
            except FileNotFoundError:
                pass
            else:
                seen["final"] += 1
                if final_size != size:
                    seen["wrong sizes"].append(final_size)
            time.sleep(0.001)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        upload(server.target(), path)
    finally:
        time.sleep(0.05)
        done.set()
        watcher.join()

    assert seen["wrong sizes"] == []
    assert seen["part"] > 0 and seen["final"] > 0  # the watcher did see the upload happen
    assert final.read_bytes() == path.read_bytes()
    assert not part.exists()


def test_an_upload_cut_by_a_server_stop_fails_and_leaves_no_final_file(server, local_file):
    path = local_file(40 * 1024 * 1024)

    def stop_midway(sent: int) -> None:
        if sent >= 8 * 1024 * 1024 and server.process is not None:
            server.stop()

    try:
        with pytest.raises(TransportError) as raised:
            upload(server.target(), path, progress=stop_midway)
    finally:
        server.restart()

    assert not raised.value.permanent
    assert f"uploading batch.csv to 127.0.0.1:{server.port}" in str(raised.value)
    assert not (server.upload_dir / "batch.csv").exists()


class _DropsDuringLogin(paramiko.ServerInterface):
    """A server that goes away while the client logs in (a restart, a crash)."""

    def __init__(self, transport: paramiko.Transport) -> None:
        self.transport = transport

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        self.transport.close()
        return paramiko.AUTH_FAILED


def test_a_connection_lost_while_logging_in_is_retried_not_refused():
    """paramiko calls it a failed login; it is an outage, and the delivery must not pause."""
    host_key = paramiko.Ed25519Key.from_private_key(io.StringIO(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ).decode()
    ))  # fmt: skip
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        sock, _ = listener.accept()
        server = paramiko.Transport(sock)
        server.add_server_key(host_key)
        server.start_server(server=_DropsDuringLogin(server))

    threading.Thread(target=serve, daemon=True).start()
    pin = f"{host_key.get_name()} {host_key.get_base64()}"
    target = sftp.FileTarget(host="127.0.0.1", port=port, username="u", password="p",
                             host_key=pin, timeout=5)  # fmt: skip
    try:
        with pytest.raises(TransportError) as caught:
            sftp.connect(target)
        assert not caught.value.permanent
        assert "closed while logging in" in str(caught.value)
    finally:
        listener.close()
