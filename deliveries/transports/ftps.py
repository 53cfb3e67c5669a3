"""FTPS (FTP over TLS) on the standard library's ftplib, explicit (AUTH TLS) or implicit.

What plain ``ftplib.FTP_TLS`` gets wrong for us, and this module fixes (see PITFALLS, FTPS):
data connections that do not resume the control connection's TLS session (vsftpd and FileZilla
Server refuse them), no implicit mode, 8 KiB blocks, and a transfer reply nobody checks.
"""

from __future__ import annotations

import datetime
import ftplib
import hashlib
import os
import re
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography import x509

from .base import FileTarget, PermanentTransportError, Progress, TransportError, login_refused

# PITFALLS: 8 KiB blocks ran at ~0.6x curl, 1 MiB at ~1.2x.
BLOCK_SIZE = 1 << 20


@dataclass(frozen=True)
class CertificateInfo:
    """What an account manager needs to decide whether to pin a server's certificate."""

    subject: str  # RFC 4514, e.g. "CN=ftp.example.com,O=Example"
    issuer: str
    not_after: datetime.datetime  # aware, UTC
    fingerprint: str  # SHA-256 of the DER certificate, "AB:CD:..." (what the target pins)


def connect(target: FileTarget) -> FtpsSession:
    return FtpsSession(target)


def fetch_certificate(host: str, port: int, tls_mode: str, timeout: float = 15) -> CertificateInfo:
    """The certificate the server presents, unverified: for a person to inspect and pin.

    Nothing is sent but ``AUTH TLS`` (explicit mode), and no credentials.
    """
    client = _Client(_unverified_context(), implicit=_is_implicit(tls_mode), timeout=timeout)
    try:
        with _translated(f"{host}:{port}", "fetching the certificate"):
            try:
                der = client.open_tls(host, port)
            except ftplib.error_perm as exc:
                raise PermanentTransportError(f"{host}:{port}: TLS refused: {exc}") from exc
    finally:
        client.close()
    cert = x509.load_der_x509_certificate(der)
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_after=cert.not_valid_after_utc,
        fingerprint=_fingerprint(der),
    )


class FtpsSession:
    def __init__(self, target: FileTarget) -> None:
        self.target = target
        self.where = f"{target.host}:{target.port}"
        self._ftp = _Client(_context(target), implicit=_is_implicit(target.tls_mode),
                            timeout=target.timeout)  # fmt: skip
        try:
            self._open()
        except BaseException:
            self._ftp.close()
            raise

    def _open(self) -> None:
        target = self.target
        with _translated(self.where, "connecting"):
            try:
                der = self._ftp.open_tls(target.host, target.port)
            except ssl.SSLCertVerificationError as exc:
                raise PermanentTransportError(
                    f"{self.where}: the server certificate does not verify"
                    f" ({exc.verify_message}){self._presented()}"
                ) from exc
            except ftplib.error_perm as exc:  # a 5xx greeting, or AUTH TLS refused
                raise PermanentTransportError(f"{self.where}: TLS refused: {exc}") from exc
        # Checked before USER/PASS: a server that is not the pinned one never sees the password.
        if target.certificate_fingerprint:
            pinned = certificate_fingerprint_normalise(target.certificate_fingerprint)
            if _fingerprint(der).replace(":", "").lower() != pinned:
                raise PermanentTransportError(
                    f"{self.where}: the server certificate does not match the pinned fingerprint;"
                    f" it presented SHA-256 {_fingerprint(der)}"
                )
        with _translated(self.where, "logging in"):
            try:
                self._ftp.login(target.username, target.password)
            except ftplib.error_perm as exc:
                raise login_refused(self.where, target, str(exc)) from exc
            self._ftp.prot_p()  # without it ftplib sends file contents in clear text
        if target.remote_dir not in ("", "."):
            with _translated(self.where, f"changing to {target.remote_dir!r}"):
                try:
                    self._ftp.cwd(target.remote_dir)
                except ftplib.error_perm as exc:
                    raise PermanentTransportError(
                        f"{self.where}: cannot use remote directory {target.remote_dir!r}: {exc}"
                    ) from exc

    def _presented(self) -> str:
        """The fingerprint of a certificate that failed verification, so it can be pinned."""
        try:
            info = fetch_certificate(self.target.host, self.target.port, self.target.tls_mode,
                                     timeout=min(self.target.timeout, 15))  # fmt: skip
        except TransportError:
            return ""
        return f"; it presented SHA-256 {info.fingerprint} ({info.subject}, by {info.issuer})"

    def upload(self, local_path: Path, name: str, *, progress: Progress | None = None) -> int:
        _check_name(name)
        temp = f".{name}.part"
        # A local error (a missing file) is ours, not the transport's: it is left as it is.
        with local_path.open("rb") as source:
            local_size = os.fstat(source.fileno()).st_size
            try:
                with _translated(self.where, f"uploading {name!r}"):
                    self._store(source, temp, progress)
                    # Before the rename: a short file must never appear under the final name.
                    self._check_size(temp, local_size)
                    self._rename(temp, name)
                    # And after it: the proof that the file under ``name`` is the one we sent.
                    return self._check_size(name, local_size)
            except BaseException:
                self._discard(temp)
                raise

    def _store(self, source: BinaryIO, remote: str, progress: Progress | None) -> None:
        ftp = self._ftp
        sent = 0
        ftp.voidcmd("TYPE I")  # binary; it also makes SIZE count bytes on every server
        with ftp.transfercmd(f"STOR {remote}") as conn:
            while block := source.read(BLOCK_SIZE):
                conn.sendall(block)
                sent += len(block)
                if progress:
                    progress(sent)
            # close_notify: tells the server the upload ended here, not cut by a lost link.
            conn.unwrap()
        reply = ftp.voidresp()  # raises on 4xx/5xx, such as 426 (transfer aborted)
        # RFC 959 allows 226 or 250 after a completed STOR; anything else is not "stored".
        if reply[:3] not in ("226", "250"):
            raise TransportError(f"{self.where}: upload of {remote!r} not confirmed: {reply}")

    def _check_size(self, remote: str, expected: int) -> int:
        size = self._ftp.size(remote)
        if size != expected:
            raise TransportError(
                f"{self.where}: {remote!r} is {size} bytes on the server, {expected} sent"
            )
        return size

    def _rename(self, temp: str, name: str) -> None:
        try:
            self._ftp.rename(temp, name)
        except ftplib.error_perm:
            # Some servers (IIS, some FileZilla setups) refuse to rename over an existing file;
            # only then delete the old one and retry, so a rename failing for another reason
            # never costs the file already delivered.
            if not self._exists(name):
                raise
            self._ftp.delete(name)
            self._ftp.rename(temp, name)

    def _exists(self, name: str) -> bool:
        try:
            return self._ftp.size(name) is not None
        except ftplib.error_perm:
            return False

    def _discard(self, temp: str) -> None:
        """Best effort: after a failure the connection may well be gone."""
        with suppress(ftplib.Error, OSError, EOFError, ValueError):
            self._ftp.delete(temp)

    def listdir(self) -> list[str]:
        with _translated(self.where, "listing the remote directory"):
            # Some servers answer NLST with paths; the interface promises names.
            return [entry.rsplit("/", 1)[-1] for entry in self._ftp.nlst()]

    def close(self) -> None:
        try:
            with suppress(ftplib.Error, OSError, EOFError, ValueError):
                self._ftp.quit()
        finally:
            self._ftp.close()

    def __enter__(self) -> FtpsSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Client(ftplib.FTP_TLS):
    """FTP_TLS with implicit TLS and data connections that resume the control session."""

    def __init__(self, context: ssl.SSLContext, *, implicit: bool, timeout: float) -> None:
        super().__init__(context=context, timeout=timeout)
        self.implicit = implicit

    def open_tls(self, host: str, port: int) -> bytes:
        """Connect with TLS up on the control connection; return the server's DER certificate."""
        self.connect(host, port)
        if not self.implicit:
            self.auth()
        return self.sock.getpeercert(binary_form=True)

    def connect(self, host="", port=0, timeout=-999, source_address=None):
        if not self.implicit:
            return super().connect(host, port, timeout, source_address)
        # Implicit FTPS (port 990): TLS from the first byte, before even the 220 greeting.
        self.host, self.port = host, port
        raw = socket.create_connection((host, port), self.timeout)
        try:
            self.sock = self.context.wrap_socket(raw, server_hostname=host)
        except BaseException:
            raw.close()
            raise
        self.af = self.sock.family
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome

    def ntransfercmd(self, cmd, rest=None):
        # The plain-FTP half (PASV, connect, send cmd); TLS is added just below.
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)  # noqa: S321
        # Resuming the control connection's session proves the data connection comes from the
        # client that logged in; vsftpd (require_ssl_reuse) and FileZilla Server refuse anything
        # else with "522 session reuse required", or cut large uploads short (SSLEOFError).
        try:
            conn = self.context.wrap_socket(conn, server_hostname=self.host,
                                            session=self.sock.session)  # fmt: skip
        except BaseException:
            conn.close()
            raise
        return conn, size


def _context(target: FileTarget) -> ssl.SSLContext:
    if target.certificate_fingerprint:
        # The pin replaces CA and name checks (it is the stronger check, and what makes a
        # self-signed server usable). It is compared in FtpsSession._open, before login.
        context = _unverified_context()
    else:
        # create_default_context(cafile=...) would *replace* the system CAs; we add to them.
        context = ssl.create_default_context()
        if target.ca_file:
            try:
                context.load_verify_locations(cafile=target.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise PermanentTransportError(
                    f"cannot load CA file {target.ca_file!r}: {exc}"
                ) from exc
    _limit_versions(context)
    return context


def _unverified_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    _limit_versions(context)
    return context


def _limit_versions(context: ssl.SSLContext) -> None:
    # TLS 1.2 only. In TLS 1.3 a session is resumed with a ticket that arrives *after* the
    # handshake, and servers may take tickets as single use: then the second data connection
    # that resumes the control connection's session is refused (vsftpd 522, ProFTPD 425; curl
    # issues #3002 and #4654, settled with --tls-max 1.2). Debian's vsftpd 3.0.3 on OpenSSL 3.0
    # accepted TLS 1.3 resumption in our tests, but the servers we deliver to are not ours, and a
    # TLS 1.2 session resumes any number of times. Speed was the same with either here.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_2


def _is_implicit(tls_mode: str) -> bool:
    if tls_mode not in ("explicit", "implicit"):
        raise PermanentTransportError(f"unknown FTPS mode {tls_mode!r}")
    return tls_mode == "implicit"


def _fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).digest().hex(":").upper()


def certificate_fingerprint_normalise(fingerprint: str) -> str:
    """Lower-case hex of a setting like "AB:CD:..", "abcd..", or "SHA256:AB:CD:.."."""
    text = re.sub(r"^sha-?256[:=\s]*", "", fingerprint.strip().lower())
    text = re.sub(r"[\s:]", "", text)
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise PermanentTransportError(f"not a SHA-256 certificate fingerprint: {fingerprint!r}")
    return text


def _check_name(name: str) -> None:
    # FTP commands are lines: a CR or LF in a name would smuggle in a command of its own.
    if not name or name in (".", "..") or any(c in name for c in "/\r\n\0"):
        raise PermanentTransportError(f"not a plain file name: {name!r}")


@contextmanager
def _translated(where: str, doing: str) -> Iterator[None]:
    """Turn ftplib, ssl and socket exceptions into TransportError, naming host:port."""
    try:
        yield
    except TransportError:
        raise
    except ssl.SSLCertVerificationError as exc:  # on a data connection, say
        raise PermanentTransportError(
            f"{where}: the server certificate does not verify ({exc.verify_message})"
        ) from exc
    except TimeoutError as exc:  # before OSError, of which it is a subclass
        raise TransportError(f"{where}: timed out {doing}") from exc
    except (ftplib.Error, OSError) as exc:  # OSError covers ssl.SSLError and refused connections
        raise TransportError(f"{where}: {doing} failed: {exc}") from exc
    except EOFError as exc:  # ftplib's word for "the server closed the control connection"
        raise TransportError(f"{where}: {doing} failed: connection closed by the server") from exc
