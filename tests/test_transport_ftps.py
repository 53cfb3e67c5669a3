"""The FTPS transport against a real vsftpd: explicit and implicit TLS, pinning, session reuse."""

from __future__ import annotations

import ftplib
import hashlib
import io
import os
import ssl

import pytest

from deliveries.transports import ftps
from deliveries.transports.base import PermanentTransportError, TransportError
from tests.processes import free_port, wait_for
from tests.servers.vsftpd import Vsftpd, vsftpd, vsftpd_implicit  # noqa: F401

MiB = 1 << 20


@pytest.fixture
def server(vsftpd: Vsftpd) -> Vsftpd:  # noqa: F811
    """vsftpd, explicit FTPS (one per test session)."""
    return vsftpd


@pytest.fixture
def implicit_server(vsftpd_implicit: Vsftpd) -> Vsftpd:  # noqa: F811
    return vsftpd_implicit


@pytest.fixture
def payload(tmp_path):
    def make(size: int, name: str = "payload.bin"):
        path = tmp_path / name
        path.write_bytes(os.urandom(size))
        return path

    return make


@pytest.fixture
def sent_commands(monkeypatch) -> list[str]:
    """Every command line the client sends (ftplib funnels them all through putcmd)."""
    lines: list[str] = []
    original = ftplib.FTP.putcmd

    def record(self, line):
        lines.append(line)
        return original(self, line)

    monkeypatch.setattr(ftplib.FTP, "putcmd", record)
    return lines


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def upload_and_check(server: Vsftpd, target, local, name):
    seen = []
    with ftps.connect(target) as session:
        size = session.upload(local, name, progress=seen.append)
        assert name in session.listdir()
    assert size == local.stat().st_size
    assert seen and seen[-1] == size and seen == sorted(seen)
    final = server.upload_dir / name
    assert digest(final) == digest(local)
    assert not (server.upload_dir / f".{name}.part").exists()


def test_explicit_tls_with_ca_file(server, payload):
    upload_and_check(server, server.target(), payload(3 * MiB + 17), "explicit.csv")


def test_explicit_tls_with_pinned_fingerprint(server, payload):
    # Lower case without colons: the pin is compared as normalised hex. No CA file needed.
    pin = server.fingerprint.replace(":", "").lower()
    target = server.target(ca_file="", certificate_fingerprint=pin)
    upload_and_check(server, target, payload(100_000), "pinned.csv")


def test_implicit_tls(implicit_server, payload):
    upload_and_check(implicit_server, implicit_server.target(), payload(2 * MiB), "implicit.csv")


def test_large_file(server, payload):
    # Session-reuse failures (522, SSLEOFError) and cut transfers show on large files.
    upload_and_check(server, server.target(), payload(30 * MiB), "large.bin")


def test_replaces_an_existing_file(server, payload):
    upload_and_check(server, server.target(), payload(5000, "old.csv"), "replaced.csv")
    upload_and_check(server, server.target(), payload(7000, "new.csv"), "replaced.csv")
    assert (server.upload_dir / "replaced.csv").stat().st_size == 7000


def test_empty_file(server, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with ftps.connect(server.target()) as session:
        assert session.upload(empty, "empty.csv") == 0
    assert (server.upload_dir / "empty.csv").read_bytes() == b""


def short_on_the_server(monkeypatch):
    monkeypatch.setattr(ftps._Client, "size", lambda self, name: 1)


def transfer_aborted(monkeypatch):
    """The server ends the transfer with 426 instead of 226."""
    original = ftps._Client.getresp

    def getresp(self):
        reply = original(self)
        if reply.startswith("226"):
            raise ftplib.error_temp("426 Connection closed; transfer aborted.")  # noqa: S321
        return reply

    monkeypatch.setattr(ftps._Client, "getresp", getresp)


@pytest.mark.parametrize("failure", [short_on_the_server, transfer_aborted])
def test_unconfirmed_upload_is_not_sent(server, payload, monkeypatch, failure):
    with ftps.connect(server.target()) as session:
        failure(monkeypatch)
        with pytest.raises(TransportError) as caught:
            session.upload(payload(50_000), "unconfirmed.csv")
    assert not caught.value.permanent
    assert not (server.upload_dir / "unconfirmed.csv").exists()
    assert not (server.upload_dir / ".unconfirmed.csv.part").exists()  # deleted after failing


def test_unverifiable_certificate_is_refused_before_login(server, sent_commands):
    # Signed by the test CA, which the system CAs do not include.
    with pytest.raises(PermanentTransportError, match="does not verify") as caught:
        ftps.connect(server.target(ca_file=""))
    assert server.fingerprint in str(caught.value)  # shown, so it can be checked and pinned
    assert not [line for line in sent_commands if line.startswith(("USER", "PASS"))]


def test_wrong_pinned_fingerprint_is_refused_before_login(server, sent_commands):
    wrong = ":".join(["AB"] * 32)
    with pytest.raises(PermanentTransportError, match="does not match") as caught:
        ftps.connect(server.target(ca_file="", certificate_fingerprint=wrong))
    assert server.fingerprint in str(caught.value)
    assert sent_commands == ["AUTH TLS"]


def test_wrong_pinned_fingerprint_implicit(implicit_server, sent_commands):
    target = implicit_server.target(certificate_fingerprint=":".join(["CD"] * 32))
    with pytest.raises(PermanentTransportError, match="does not match"):
        ftps.connect(target)
    assert sent_commands == []  # implicit TLS: nothing at all before the certificate check


def test_wrong_password(server):
    with pytest.raises(PermanentTransportError, match="authentication refused") as refused:
        ftps.connect(server.target(password="wrong"))
    # Client users read delivery errors; the login name is not theirs to see.
    assert server.user not in str(refused.value)


def test_closed_port_is_a_transient_error(server):
    port = free_port()
    with pytest.raises(TransportError, match=f"127.0.0.1:{port}") as caught:
        ftps.connect(server.target(port=port))
    assert not caught.value.permanent


def test_fetch_certificate(server, implicit_server):
    for each, mode in ((server, "explicit"), (implicit_server, "implicit")):
        info = ftps.fetch_certificate(each.host, each.port, mode)
        assert info.fingerprint == each.fingerprint
        assert "CN=localhost" in info.subject
        assert "CN=Rokt test CA" in info.issuer
        assert info.not_after.tzinfo is not None


def test_server_requires_session_reuse(server, tmp_path):
    """Plain FTP_TLS (no session reuse) is refused: the fixture really enforces reuse."""
    context = ssl.create_default_context(cafile=server.ca_file)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    client = ftplib.FTP_TLS(context=context, timeout=10)  # noqa: S321 (the point of the test)
    try:
        client.connect(server.host, server.port)
        client.login(server.user, server.password)
        client.prot_p()
        client.cwd(str(server.upload_dir))
        # Seen here as the 522 reply; on large files as an SSLEOFError first.
        with pytest.raises((ftplib.error_perm, ssl.SSLError)):
            client.storbinary("STOR no-reuse.bin", io.BytesIO(b"x" * 100_000))
    finally:
        client.close()
    wait_for(
        lambda: "522 SSL connection failed: session reuse required" in server.protocol_log_text(),
        timeout=5, what="vsftpd's 522 refusal in its protocol log",
    )  # fmt: skip


def test_upload_cut_by_server_stop(server, payload):
    local = payload(64 * MiB)

    def stop_midway(sent: int) -> None:
        if sent >= 4 * MiB:
            server.stop()

    try:
        with ftps.connect(server.target()) as session, pytest.raises(TransportError) as caught:
            session.upload(local, "cut.bin", progress=stop_midway)
        assert not caught.value.permanent
        assert "127.0.0.1" in str(caught.value)
        assert not (server.upload_dir / "cut.bin").exists()
    finally:
        server.start()
    # The same server, the same port, usable again.
    upload_and_check(server, server.target(), payload(1000, "after.bin"), "after.bin")
