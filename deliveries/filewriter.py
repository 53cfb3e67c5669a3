"""Write a batch's referrals to local CSV files, streaming: bounded memory at any size.

On PostgreSQL the custom-field engine's SQL back end runs under COPY, which renders and quotes
every row inside the database; elsewhere the engine's Python back end and ``csv``. Either way
the bytes are hashed and counted as they are written, and a batch is split into parts of at
most ``max_rows_per_file`` rows.
"""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.db import connection

from customfields.csvfile import BOM, CsvFormat
from customfields.engine import Column, CompiledColumns, compile_columns, standard_columns
from referrals.models import Referral

_FLUSH = 256 * 1024


@dataclass
class WrittenFile:
    name: str
    path: Path
    rows: int
    bytes: int
    sha256: str

    def as_dict(self) -> dict:
        return {"name": self.name, "rows": self.rows, "bytes": self.bytes, "sha256": self.sha256}


def delivery_columns(delivery) -> list[Column]:
    if not delivery.columns:
        return standard_columns()
    return [Column(c["source"], c["output"]) for c in delivery.columns]


def delivery_compiled(delivery) -> CompiledColumns:
    return compile_columns(
        client=delivery.client, columns=delivery_columns(delivery), neutralise_formulae=True
    )


class _HashingFile(io.RawIOBase):
    """A file that counts and hashes what goes through it (under gzip, the compressed bytes)."""

    def __init__(self, path: Path) -> None:
        self._handle = path.open("wb")
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._handle.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._handle.close()
        super().close()


class _Part:
    def __init__(self, delivery, path: Path, header: bytes) -> None:
        self.path = path
        self.raw = _HashingFile(path)
        # mtime=0: the same batch compresses to the same bytes on a resend.
        self.out = (
            gzip.GzipFile(fileobj=self.raw, mode="wb", mtime=0) if delivery.gzip else self.raw
        )
        self.rows = 0
        self.pending: list[bytes] = []
        self.pending_size = 0
        if delivery.bom:
            self.out.write(BOM)
        if header:
            self.out.write(header)

    def add(self, row: bytes) -> None:
        self.pending.append(row)
        self.pending_size += len(row)
        self.rows += 1
        if self.pending_size >= _FLUSH:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.out.write(b"".join(self.pending))
            self.pending, self.pending_size = [], 0

    def finish(self, name: str) -> WrittenFile:
        self.flush()
        if self.out is not self.raw:
            self.out.close()
        self.raw.close()
        return WrittenFile(name, self.path, self.rows, self.raw.size, self.raw.sha256.hexdigest())


def batch_write(delivery, batch, directory: Path, names_for) -> list[WrittenFile]:
    """Write ``batch``'s files into ``directory``; ``names_for(parts)`` names them."""
    compiled = delivery_compiled(delivery)
    header = csv_format(delivery).line(compiled.headers).encode() if delivery.header else b""
    limit = delivery.max_rows_per_file or 0
    parts: list[_Part] = []

    def new_part() -> _Part:
        part = _Part(delivery, directory / f"part-{len(parts) + 1}", header)
        parts.append(part)
        return part

    current = new_part()
    for row in _batch_rows(delivery, batch, compiled):
        if limit and current.rows == limit:
            current = new_part()
        current.add(row)
    names = names_for(len(parts))
    written = []
    for part, name in zip(parts, names, strict=True):
        final = directory / name
        done = part.finish(name)
        part.path.rename(final)
        done.path = final
        written.append(done)
    return written


def _batch_rows(delivery, batch, compiled: CompiledColumns) -> Iterator[bytes]:
    """Each row of the batch as CSV bytes, in referral id order."""
    if connection.vendor == "postgresql":
        yield from _rows_copy(delivery, batch, compiled)
    else:
        yield from _rows_python(delivery, batch, compiled)


def _rows_copy(delivery, batch, compiled: CompiledColumns) -> Iterator[bytes]:
    # Only an integer goes into the SQL: COPY takes no parameters.
    batch_id = int(batch.pk)
    where = (
        f"r.id IN (SELECT e.referral_id FROM deliveries_batchentry e WHERE e.batch_id = {batch_id})"  # noqa: S608
    )
    # COPY sends one message per row, which is what lets a batch split into parts exactly.
    return csv_format(delivery).copy_rows(compiled, where=where, order_by="r.id")


def _rows_python(delivery, batch, compiled: CompiledColumns) -> Iterator[bytes]:
    queryset = Referral.objects.filter(id__in=batch.entries.values("referral_id")).order_by("id")
    lines = csv_format(delivery).lines(compiled.rows(queryset), len(compiled.headers))
    return (line.encode() for line in lines)


def csv_format(delivery) -> CsvFormat:
    return CsvFormat(delimiter=delivery.delimiter, quote_all=delivery.quoting == "all")
