"""Point deliveries at the test servers, and read back what arrived."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

from tests.factories import make_file_delivery


def sftp_delivery(client, sshd, **overrides):
    settings = {
        "kind": "sftp", "host": sshd.host, "port": sshd.port, "username": sshd.username,
        "password": sshd.password, "remote_dir": sshd.remote_dir,
        "host_key": sshd.host_keys["ed25519"],
    }  # fmt: skip
    return make_file_delivery(client, **{**settings, **overrides})


def ftps_delivery(client, server, **overrides):
    settings = {
        "kind": "ftps", "host": server.host, "port": server.port, "username": server.user,
        "password": server.password, "remote_dir": str(server.upload_dir),
        "tls_mode": "implicit" if server.implicit else "explicit",
        "certificate_fingerprint": server.fingerprint,
    }  # fmt: skip
    return make_file_delivery(client, **{**settings, **overrides})


def clear(directory: Path) -> None:
    for path in directory.iterdir():
        if path.is_file():
            path.unlink()


def arrived(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def csv_rows(data: bytes, *, delimiter: str = ",") -> list[list[str]]:
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    text = data.decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text), delimiter=delimiter))
