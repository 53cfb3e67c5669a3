"""Customer Data > Referrals > Export: the referrals of a time frame, as a file, streamed.

The file is never built in memory: CSV streams from PostgreSQL's COPY (the custom-field
engine's SQL back end) or, on other databases, row by row from the Python back end; JSON
streams row by row. Every export is audited: who, which client, which filters, how many rows.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.utils import timezone

from customfields.engine import Column, CompiledColumns, compile_columns
from customfields.models import CustomField
from customfields.sources import STANDARD_FIELDS
from customfields.sqltext import literal
from referrals.models import Client, ExportAudit, Referral

FORMATS = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "json": ("application/json", "json"),
}
COLUMN_SETS = {
    "standard": "Standard fields",
    "custom": "Standard fields and the client's custom fields",
}
TIME_FIELDS = {"created_at": "stored", "opted_in_at": "opted in"}
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class ExportRequest:
    """What to export. Dates are days in the client's time zone, both ends included."""

    client: Client
    format: str = "csv"
    time_field: str = "created_at"
    start: dt.date | None = None
    end: dt.date | None = None
    campaign_ids: tuple[int, ...] = field(default_factory=tuple)
    column_set: str = "standard"

    def bounds(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        """[start of ``start``, start of the day after ``end``) in the client's zone."""
        zone = self.client.zone

        def midnight(day: dt.date) -> dt.datetime:
            return dt.datetime.combine(day, dt.time.min, tzinfo=zone)

        lower = midnight(self.start) if self.start else None
        upper = midnight(self.end + dt.timedelta(days=1)) if self.end else None
        return lower, upper

    def filters(self) -> dict:
        return {
            "time_field": self.time_field,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "campaign_ids": list(self.campaign_ids),
            "column_set": self.column_set,
        }


def export_columns(request: ExportRequest) -> list[Column]:
    columns = [Column(name, name) for name in STANDARD_FIELDS]
    if request.column_set == "custom":
        names = CustomField.objects.filter(client=request.client).values_list("name", flat=True)
        columns += [Column(name, name) for name in names]
    return columns


def export_queryset(request: ExportRequest):
    queryset = Referral.objects.filter(client=request.client)
    lower, upper = request.bounds()
    if lower:
        queryset = queryset.filter(**{f"{request.time_field}__gte": lower})
    if upper:
        queryset = queryset.filter(**{f"{request.time_field}__lt": upper})
    if request.campaign_ids:
        queryset = queryset.filter(campaign_id__in=request.campaign_ids)
    return queryset.order_by(request.time_field, "id")


def export_file_name(request: ExportRequest) -> str:
    stamp = timezone.now().astimezone(request.client.zone).strftime("%Y%m%d-%H%M%S")
    return f"referrals-{request.client.slug}-{stamp}.{FORMATS[request.format][1]}"


def export_stream(request: ExportRequest, *, user) -> Iterator[bytes]:
    """The file's bytes, in chunks; the audit entry is written first and completed with the
    row count when the last chunk has gone (or marked unfinished if the download stops)."""
    audit = ExportAudit.objects.create(
        user=user, client=request.client, format=request.format, filters=request.filters()
    )
    compiled = compile_columns(
        client=request.client,
        columns=export_columns(request),
        neutralise_formulae=request.format == "csv",
    )
    rows = 0
    try:
        if request.format == "csv":
            writer = _csv_copy if connection.vendor == "postgresql" else _csv_python
        else:
            writer = _json_python
        for chunk, count in writer(request, compiled):
            rows += count
            yield chunk
        audit.completed_at = timezone.now()
    finally:
        audit.rows = rows
        audit.save(update_fields=["rows", "completed_at"])


def _header(compiled: CompiledColumns) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(compiled.headers)
    return buffer.getvalue().encode()


def _csv_python(request: ExportRequest, compiled: CompiledColumns):
    yield _header(compiled), 0
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    pending = 0
    for row in compiled.rows(export_queryset(request)):
        writer.writerow(row)
        pending += 1
        if pending == 1000:
            yield buffer.getvalue().encode(), pending
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    if pending:
        yield buffer.getvalue().encode(), pending


def _csv_copy(request: ExportRequest, compiled: CompiledColumns):
    """COPY the engine's SELECT as CSV: PostgreSQL writes the file, Python passes it on."""
    yield _header(compiled), 0
    lower, upper = request.bounds()
    column = {"created_at": "r.created_at", "opted_in_at": "r.opted_in_at"}[request.time_field]
    where = [f"r.client_id = {int(request.client.pk)}"]
    if lower:
        where.append(f"{column} >= {literal(lower.isoformat())}::timestamptz")
    if upper:
        where.append(f"{column} < {literal(upper.isoformat())}::timestamptz")
    if request.campaign_ids:
        where.append(f"r.campaign_id IN ({', '.join(str(int(i)) for i in request.campaign_ids)})")
    query = compiled.select_sql(where=" AND ".join(where), order_by=f"{column}, r.id")
    # A transaction of its own: COPY streams from one snapshot, and a server-side statement
    # runs while the client reads.
    with transaction.atomic(), connection.cursor() as cursor:
        raw = cursor.cursor
        with raw.copy(f"COPY ({query}) TO STDOUT (FORMAT csv)") as copy:
            # PostgreSQL sends a row per message: pass them on in chunks of about 64 KiB.
            pending: list[bytes] = []
            size = 0
            for block in copy:
                pending.append(bytes(block))
                size += len(block)
                if size >= _CHUNK:
                    yield b"".join(pending), 0
                    pending, size = [], 0
            yield b"".join(pending), 0
        yield b"", raw.rowcount


def _json_python(request: ExportRequest, compiled: CompiledColumns):
    headers = compiled.headers
    yield b"[", 0
    first = True
    for row in compiled.rows(export_queryset(request)):
        text = json.dumps(dict(zip(headers, row, strict=True)), ensure_ascii=False)
        yield (text if first else ",\n" + text).encode(), 1
        first = False
    yield b"]\n", 0
