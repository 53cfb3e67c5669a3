"""The interface every file transport (SFTP, FTPS) offers to the delivery run.

A transport knows nothing of Django or of deliveries: it gets a ``FileTarget`` (where to send
and how to prove who we are and who they are) and moves local files to the remote directory.
Keeping it that small lets the run service treat every protocol alike, and lets the transports
be tested against real servers without a database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# Called with the bytes sent so far of the file being uploaded.
Progress = Callable[[int], None]


@dataclass(frozen=True)
class FileTarget:
    host: str
    port: int
    username: str
    password: str = ""
    # A private key in OpenSSH or PEM text (ed25519, RSA, ECDSA), optionally encrypted.
    private_key: str = ""
    passphrase: str = ""
    remote_dir: str = "."
    # SFTP: the pinned server key, as an OpenSSH public key line ("ssh-ed25519 AAAA...") or its
    # fingerprint ("SHA256:..."). Never empty at connect: an unpinned server is refused.
    host_key: str = ""
    # FTPS: "explicit" (AUTH TLS on the control port) or "implicit" (TLS from the first byte,
    # port 990 by convention).
    tls_mode: str = "explicit"
    # FTPS: the server certificate's SHA-256 fingerprint (hex, colons allowed). Empty: the
    # certificate must verify against the system CAs (plus ``ca_file`` when given) and name.
    certificate_fingerprint: str = ""
    ca_file: str = ""
    timeout: float = 30.0


class TransportError(Exception):
    """A transfer failed. ``permanent`` says retrying the same thing cannot help."""

    permanent = False


class PermanentTransportError(TransportError):
    """A host key or certificate that does not match, refused credentials, a bad setting."""

    permanent = True


def login_refused(where: str, target: FileTarget, detail: str) -> PermanentTransportError:
    """A refused login, told without the login name: errors reach client users, who may see
    the host but not the credentials (a server may echo the name in its answer too)."""
    if target.username:
        detail = detail.replace(target.username, "<login>")
    return PermanentTransportError(
        f"authentication refused by {where} for the delivery's login: {detail}"
    )


class FileSession(Protocol):
    def upload(self, local_path: Path, name: str, *, progress: Progress | None = None) -> int:
        """Put ``local_path`` into the remote directory as ``name``; return the remote size.

        Uploads under a temporary name first and renames it into place, replacing a file of
        the same name, so no partial file is ever visible under ``name``. Raises
        ``TransportError`` unless the remote size equals the local size.
        """

    def listdir(self) -> list[str]:
        """Names in the remote directory (used by "test connection")."""

    def close(self) -> None: ...


class FileTransport(Protocol):
    def connect(self, target: FileTarget) -> FileSession: ...
