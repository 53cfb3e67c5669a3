"""SFTP over paramiko: pinned host key, password or key login, atomic and verified uploads.

The SSH handshake runs on a socket of our own over ``paramiko.Transport`` (not ``SSHClient``), so
the server's key is compared with the pin before any credential is sent: an impostor never
sees the password. Every paramiko and socket error leaves this module as a ``TransportError``,
permanent when retrying cannot help (key mismatch, refused login, unreadable private key).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import io
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import paramiko
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from paramiko.sftp import SFTPError

from deliveries.transports.base import (
    FileTarget,
    PermanentTransportError,
    Progress,
    TransportError,
    login_refused,
)

# Local reads this large keep Python's per-call overhead small; paramiko cuts them into 32 KiB
# SFTP writes and, pipelined, keeps the server's whole window (2 MiB for OpenSSH) in flight.
READ_SIZE = 1024 * 1024

# Host-key algorithms a server offers for each key type in a pinned key line, so that a server
# with several host keys presents the pinned one. RSA keys sign with SHA-2 only (ssh-rsa/SHA-1 is
# off in OpenSSH since 8.8).
HOST_KEY_ALGORITHMS = {
    "ssh-ed25519": ["ssh-ed25519"],
    "ecdsa-sha2-nistp256": ["ecdsa-sha2-nistp256"],
    "ecdsa-sha2-nistp384": ["ecdsa-sha2-nistp384"],
    "ecdsa-sha2-nistp521": ["ecdsa-sha2-nistp521"],
    "ssh-rsa": ["rsa-sha2-512", "rsa-sha2-256"],
}


@dataclass(frozen=True)
class HostKey:
    key_type: str  # "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", ...
    fingerprint: str  # "SHA256:<base64, no padding>", as ``ssh-keygen -lf`` prints it
    openssh: str  # "ssh-ed25519 AAAA...": the line to pin

    @classmethod
    def of(cls, key: paramiko.PKey) -> HostKey:
        return cls(
            key.get_name(), fingerprint(key.asbytes()), f"{key.get_name()} {key.get_base64()}"
        )


def fingerprint(blob: bytes) -> str:
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode()
    return "SHA256:" + digest.rstrip("=")


def fetch_host_key(host: str, port: int, timeout: float = 15) -> HostKey:
    """The key the server presents by default, for a person to confirm and pin. No login."""
    transport = _handshake(host, port, timeout, key_types=None)
    try:
        return HostKey.of(transport.get_remote_server_key())
    finally:
        transport.close()


def connect(target: FileTarget) -> SftpSession:
    """Log in to ``target`` and open SFTP in ``target.remote_dir``."""
    where = f"{target.host}:{target.port}"
    pinned_fingerprint, key_types = host_key_pin_parse(target.host_key)
    # Settings are checked before the network is touched: a bad key is a permanent error.
    pkey = private_key_load(target.private_key, target.passphrase) if target.private_key else None
    if pkey is None and not target.password:
        raise PermanentTransportError(f"no password or private key set for {where}")

    transport = _handshake(target.host, target.port, target.timeout, key_types=key_types)
    try:
        presented = HostKey.of(transport.get_remote_server_key())
        if presented.fingerprint != pinned_fingerprint:
            # A bare fingerprint cannot say which of the server's keys it is for.
            hint = "" if key_types else " (to pin another of its keys, pin the full key line)"
            raise PermanentTransportError(
                f"the host key of {where} does not match the pinned one: the server presented "
                f"{presented.key_type} {presented.fingerprint}, pinned is {pinned_fingerprint}"
                + hint
            )
        _authenticate(transport, target, pkey)
        with _errors(f"opening SFTP on {where}"):
            sftp = paramiko.SFTPClient.from_transport(transport)
            if sftp is None:
                raise TransportError(f"{where} refused to open an SFTP channel")
            # Every later read or write of the channel waits at most this long.
            sftp.get_channel().settimeout(target.timeout)
        with _errors(f"opening remote directory {target.remote_dir!r} on {where}"):
            sftp.chdir(target.remote_dir)
    except BaseException:
        transport.close()
        raise
    return SftpSession(transport, sftp, where)


class SftpSession:
    def __init__(self, transport: paramiko.Transport, sftp: paramiko.SFTPClient, where: str):
        self._transport = transport
        self._sftp = sftp
        self._where = where

    def upload(self, local_path: Path, name: str, *, progress: Progress | None = None) -> int:
        if not name or "/" in name or name in (".", ".."):
            raise PermanentTransportError(f"not a plain file name: {name!r}")
        part = f".{name}.part"
        # Local errors (a missing file) are ours, not the transport's: they are left as they are.
        with local_path.open("rb") as source:
            local_size = os.fstat(source.fileno()).st_size
            try:
                with _errors(f"uploading {name} to {self._where}"):
                    sent = self._write(source, part, progress)
                    if sent != local_size:
                        raise TransportError(f"{local_path} changed while it was being uploaded")
                    self._replace(part, name)
                    return self._check_size(name, local_size)
            except BaseException:
                # Best effort: the connection may be the thing that failed.
                with contextlib.suppress(Exception):
                    self._sftp.remove(part)
                raise

    def _write(self, source: io.BufferedReader, part: str, progress: Progress | None) -> int:
        sent = 0
        with self._sftp.open(part, "wb") as remote:
            # Without pipelining every 32 KiB write waits for its reply: ~1 MB/s at best.
            remote.set_pipelined(True)
            # A 32 KiB write plus its SFTP header overflows OpenSSH's 32 KiB channel packet, so
            # paramiko sent a tiny second packet for each: one packet per write is ~30% faster.
            room = self._sftp.get_channel().out_max_packet_size - 64 - 25 - len(remote.handle)
            remote.MAX_REQUEST_SIZE = min(remote.MAX_REQUEST_SIZE, max(room, 1024))
            while chunk := source.read(READ_SIZE):
                remote.write(chunk)
                sent += len(chunk)
                if progress is not None:
                    progress(sent)
            pipelined_writes_confirm(self._sftp, remote)
            # Checked on the open handle, before the file gets its final name.
            size = remote.stat().st_size
        if size != sent:
            raise TransportError(f"the server stored {size} of {sent} bytes of {part}")
        return sent

    def _replace(self, part: str, name: str) -> None:
        try:
            # OpenSSH's extension renames over an existing file atomically; plain SFTP rename
            # refuses when the target exists.
            self._sftp.posix_rename(part, name)
        except OSError as error:
            # paramiko drops the status code: "unsupported" is known by its text only. Anything
            # else must not reach the remove() below, which would lose the existing file.
            if not any(w in str(error).lower() for w in ("support", "unknown", "implemented")):
                raise
            with contextlib.suppress(FileNotFoundError):
                self._sftp.remove(name)
            self._sftp.rename(part, name)

    def _check_size(self, name: str, local_size: int) -> int:
        try:
            size = self._sftp.stat(name).st_size
        except FileNotFoundError:
            # Some servers move a file away as soon as it arrives; its size was already
            # checked under the temporary name.
            return local_size
        if size != local_size:
            raise TransportError(f"{name} on {self._where} has {size} bytes, not {local_size}")
        return size

    def listdir(self) -> list[str]:
        with _errors(f"listing the remote directory on {self._where}"):
            return self._sftp.listdir()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._sftp.close()
        self._transport.close()

    def __enter__(self) -> SftpSession:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.close()


def host_key_pin_parse(pin: str) -> tuple[str, list[str] | None]:
    """The pinned fingerprint and, for a key line, the host-key algorithms to ask for."""
    pin = pin.strip()
    if not pin:
        raise PermanentTransportError("no host key pinned: fetch the server's key and confirm it")
    fields = pin.split()
    # A fingerprint alone, or a whole ``ssh-keygen -lf`` line ("256 SHA256:... host (ED25519)").
    for field in fields:
        if field.startswith("SHA256:"):
            return field.rstrip("="), None
    # A known_hosts line starts with the host name(s): skip them.
    if len(fields) >= 3 and fields[0] not in HOST_KEY_ALGORITHMS:
        fields = fields[1:]
    if len(fields) < 2 or fields[0] not in HOST_KEY_ALGORITHMS:
        raise PermanentTransportError(f"the pinned host key is not a key line or SHA256: {pin!r}")
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except binascii.Error as error:
        raise PermanentTransportError(f"the pinned host key is not valid base64: {error}") from None
    return fingerprint(blob), HOST_KEY_ALGORITHMS[fields[0]]


def private_key_load(text: str, passphrase: str) -> paramiko.PKey:
    """A paramiko key from OpenSSH or PEM text (PKCS#1, SEC1, PKCS#8), encrypted or not."""
    data = text.strip().encode() + b"\n"
    load = (
        serialization.load_ssh_private_key
        if b"BEGIN OPENSSH PRIVATE KEY" in data
        else serialization.load_pem_private_key
    )
    password = passphrase.encode() or None
    try:
        try:
            key = load(data, password)
        except TypeError:  # encrypted without a passphrase, or a passphrase for a plain key
            if password is None:
                raise PermanentTransportError(
                    "the private key is encrypted and no passphrase is set"
                ) from None
            key = load(data, None)
    except (ValueError, UnsupportedAlgorithm) as error:
        if password is not None and _is_encrypted(load, data):
            raise PermanentTransportError("the passphrase of the private key is wrong") from None
        raise PermanentTransportError(f"the private key cannot be read: {error}") from None
    # paramiko reads unencrypted OpenSSH text for every key type; cryptography above did the
    # format juggling and the decryption once.
    classes = {
        ed25519.Ed25519PrivateKey: paramiko.Ed25519Key,
        rsa.RSAPrivateKey: paramiko.RSAKey,
        ec.EllipticCurvePrivateKey: paramiko.ECDSAKey,
    }
    for crypto_class, key_class in classes.items():
        if isinstance(key, crypto_class):
            plain = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            )
            return key_class.from_private_key(io.StringIO(plain.decode()))
    raise PermanentTransportError(f"unsupported private key type {type(key).__name__}")


def _is_encrypted(load: Callable[[bytes, bytes | None], object], data: bytes) -> bool:
    try:
        load(data, None)
    except TypeError:
        return True
    except (ValueError, UnsupportedAlgorithm):
        pass
    return False


def _handshake(
    host: str, port: int, timeout: float, *, key_types: list[str] | None
) -> paramiko.Transport:
    where = f"{host}:{port}"
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        raise TransportError(f"timed out connecting to {where}") from None
    except OSError as error:
        raise TransportError(f"cannot connect to {where}: {error}") from None
    # paramiko leaves Nagle on, which delays every small handshake and SFTP request.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport = paramiko.Transport(sock)
    transport.banner_timeout = transport.handshake_timeout = transport.auth_timeout = timeout
    options = transport.get_security_options()
    if key_types is not None:
        options.key_types = key_types
    # AES-GCM encrypts and authenticates in one call per packet: ~1.4x the upload speed of
    # paramiko's first choice (aes128-ctr with hmac-sha2-256) here. The others stay as fallbacks.
    gcm = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
    options.ciphers = (*gcm, *(c for c in options.ciphers if c not in gcm))
    try:
        with _errors(f"SSH handshake with {where}"):
            try:
                transport.start_client(timeout=timeout)
                # start_client returns quietly when its timeout passes mid-handshake.
                if not transport.initial_kex_done:
                    raise TransportError(f"SSH handshake with {where}: timed out")
            except paramiko.IncompatiblePeer as error:
                if "host key" in str(error) and key_types is not None:
                    raise PermanentTransportError(
                        f"the host key of {where} does not match the pinned one: the server "
                        f"has no {' or '.join(key_types)} host key"
                    ) from None
                raise PermanentTransportError(f"{where}: {error}") from None
    except BaseException:
        transport.close()
        raise
    return transport


def _authenticate(
    transport: paramiko.Transport, target: FileTarget, pkey: paramiko.PKey | None
) -> None:
    where = f"{target.host}:{target.port}"
    with _errors(f"logging in to {where}"):
        try:
            if pkey is not None:
                try:
                    transport.auth_publickey(target.username, pkey)
                except paramiko.AuthenticationException:
                    if not target.password:
                        raise
            # Also after a key that the server accepted only as a first step.
            if not transport.is_authenticated() and target.password:
                transport.auth_password(target.username, target.password)
        except paramiko.AuthenticationException as error:
            if not transport.is_active():
                # paramiko reports a connection lost during login as a failed login
                # ("transport shut down or saw EOF"): the server went away, retrying can help.
                raise TransportError(f"{where}: the connection closed while logging in") from None
            raise login_refused(where, target, str(error)) from None
    if not transport.is_authenticated():
        raise login_refused(where, target, "it wants more than the password and key given")


@contextlib.contextmanager
def _errors(action: str) -> Iterator[None]:
    """Turn paramiko's and the socket's errors into ``TransportError``s naming the action."""
    try:
        yield
    except TransportError:
        raise
    except TimeoutError as error:
        raise TransportError(f"{action}: timed out") from error
    except OSError as error:
        message = f"{action}: {error.strerror or error}"
        if error.errno in (errno.EACCES, errno.ENOENT):  # a setting someone has to change
            raise PermanentTransportError(message) from error
        raise TransportError(message) from error
    except (paramiko.SSHException, SFTPError, EOFError) as error:
        raise TransportError(f"{action}: {error or type(error).__name__}") from error


def pipelined_writes_confirm(client: paramiko.SFTPClient, remote: paramiko.SFTPFile) -> None:
    """Read the reply of every write ``remote`` has pipelined, raising the first error.

    paramiko reads a pipelined write's reply only when it happens to look; an error it never
    read (disk full, quota) would leave a hole in the file. paramiko's own internals, the
    only ones this module uses: the pending requests ``SFTPFile._reqs`` and
    ``SFTPClient._read_response`` (tests/test_library_internals.py)."""
    while remote._reqs:
        client._read_response(remote._reqs.popleft())

