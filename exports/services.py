"""Customer Data > Referrals > Export: the referrals of a time frame, as a file.

The file is never built in memory. Up to ``EXPORT_SYNC_MAX_ROWS`` rows, CSV and JSON stream
straight to the browser: CSV from PostgreSQL's COPY (the custom-field engine's SQL back end)
or, on other databases, row by row from the Python back end; JSON row by row. Larger exports,
and every XLSX (openpyxl's write-only mode: constant memory), are written to a file by a worker
on the "exports" queue while the page shows progress; the file expires after
``EXPORT_FILE_TTL_HOURS``. Every export and every download is audited.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.template.defaultfilters import pluralize
from django.utils import timezone

from customfields.csvfile import BOM, CsvFormat
from customfields.engine import Column, CompiledColumns, compile_columns
from customfields.models import CustomField
from customfields.sources import STANDARD_FIELDS
from customfields.sqltext import literal
from deliveries.filewriter import delivery_columns
from deliveries.models import Delivery
from exports.xlsx import xlsx_write
from referrals.models import Client, ExportAudit, ExportDownload, Referral
from referrals.selectors import SEARCH_FIELDS, referral_search, search_terms

FORMATS = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "json": ("application/json", "json"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
}
# Formats whose would-be formulae get an apostrophe; XLSX stores text as text instead
# (exports/xlsx.py).
PREFIXED_FORMATS = {"csv"}
STREAMED_FORMATS = {"csv", "json"}
PROGRESS_EVERY = 5000
COLUMN_SETS = {
    "standard": "Standard fields",
    "custom": "Standard fields and the client's custom fields",
}
TIME_FIELDS = {"created_at": "stored", "opted_in_at": "opted in"}
_CHUNK = 64 * 1024
CSV = CsvFormat()  # the platform's CSV (customfields.csvfile), as a delivery's defaults


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
    # The referral list's search (``referrals.selectors.referral_search``): "" for none.
    search: str = ""
    bom: bool = False  # CSV: start with a UTF-8 byte order mark (Excel on Windows needs it)

    def bounds(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        """[start of ``start``, start of the day after ``end``) in the client's zone."""
        zone = self.client.zone

        def midnight(day: dt.date) -> dt.datetime:
            return dt.datetime.combine(day, dt.time.min, tzinfo=zone)

        lower = midnight(self.start) if self.start else None
        upper = midnight(self.end + dt.timedelta(days=1)) if self.end else None
        return lower, upper

    @classmethod
    def from_audit(cls, audit: ExportAudit) -> ExportRequest:
        f = audit.filters  # what the audit recorded; a key it lacks takes the default
        return cls(
            client=audit.client, format=audit.format,
            time_field=f.get("time_field", "created_at"),
            start=dt.date.fromisoformat(f["start"]) if f.get("start") else None,
            end=dt.date.fromisoformat(f["end"]) if f.get("end") else None,
            campaign_ids=tuple(f.get("campaign_ids", ())),
            column_set=f.get("column_set", "standard"),
            search=f.get("search", ""), bom=f.get("bom", False),
        )  # fmt: skip

    def describe(self) -> str:
        """The request in words, for the audit ("stored 2026-11-01 to 2026-11-07, 2 campaigns,
        columns: standard")."""
        when = "stored" if self.time_field == "created_at" else "opted in"
        start, end = self.start or "the first", self.end or "today"
        parts = [f"{when} {start} to {end}" if self.start or self.end else f"{when}: any day"]
        if self.campaign_ids:
            parts.append(f"{len(self.campaign_ids)} campaign{pluralize(len(self.campaign_ids))}")
        if self.search:
            parts.append(f'search "{self.search}"')
        column_set = self.column_set
        if column_set.startswith(DELIVERY_COLUMN_SET):
            column_set = f"delivery #{column_set.removeprefix(DELIVERY_COLUMN_SET)}'s columns"
        parts.append(f"columns: {column_set}")
        if self.bom:
            parts.append("with BOM")
        return ", ".join(parts)

    def filters(self) -> dict:
        return {
            "time_field": self.time_field,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "campaign_ids": list(self.campaign_ids),
            "column_set": self.column_set,
            "search": self.search,
            "bom": self.bom,
        }


DELIVERY_COLUMN_SET = "delivery:"


def export_columns(request: ExportRequest) -> list[Column]:
    if request.column_set.startswith(DELIVERY_COLUMN_SET):
        # A delivery's own column list: the file a client would have received, to recover a
        # lost one by hand.
        pk = request.column_set.removeprefix(DELIVERY_COLUMN_SET)
        delivery = Delivery.objects.filter(client=request.client, pk=int(pk)).first()
        if delivery is None:
            raise ValueError(f"The delivery {pk} of {request.client} no longer exists.")
        return delivery_columns(delivery)
    columns = [Column(name, name) for name in STANDARD_FIELDS]
    if request.column_set == "custom":
        names = CustomField.objects.filter(client=request.client).values_list("name", flat=True)
        columns += [Column(name, name) for name in names]
    return columns


def referral_search_sql(text: str, *, alias: str) -> str:
    """``referrals.selectors.referral_search`` as SQL over the referral table ``alias``, for
    COPY (which takes no parameters); as Django's ``iexact`` on PostgreSQL: ``UPPER`` both
    sides."""
    words = []
    for term in search_terms(text):
        value = literal(term)
        fields = " OR ".join(f'UPPER({alias}."{name}") = UPPER({value})' for name in SEARCH_FIELDS)
        words.append(f"({fields})")
    return " AND ".join(words) or "TRUE"


def export_queryset(request: ExportRequest):
    queryset = Referral.objects.filter(client=request.client)
    lower, upper = request.bounds()
    if lower:
        queryset = queryset.filter(**{f"{request.time_field}__gte": lower})
    if upper:
        queryset = queryset.filter(**{f"{request.time_field}__lt": upper})
    if request.campaign_ids:
        queryset = queryset.filter(campaign_id__in=request.campaign_ids)
    if request.search:
        queryset = queryset.filter(referral_search(request.search))
    return queryset.order_by(request.time_field, "id")


def export_file_name(request: ExportRequest) -> str:
    stamp = timezone.now().astimezone(request.client.zone).strftime("%Y%m%d-%H%M%S")
    return f"referrals-{request.client.slug}-{stamp}.{FORMATS[request.format][1]}"


def export_start(request: ExportRequest, *, user) -> tuple[ExportAudit, Iterator[bytes] | None]:
    """Audit the export, then either stream it (the iterator) or queue it for a worker."""
    total = export_queryset(request).count()
    background = request.format not in STREAMED_FORMATS or total > settings.EXPORT_SYNC_MAX_ROWS
    audit = ExportAudit.objects.create(
        user=user, client=request.client, format=request.format, filters=request.filters(),
        total_rows=total, file_name=export_file_name(request),
        status=ExportAudit.Status.QUEUED if background else ExportAudit.Status.STREAMED,
    )  # fmt: skip
    if background:
        from exports.tasks import build_export

        transaction.on_commit(lambda: build_export.delay(audit.pk))
        return audit, None
    return audit, _stream(audit, request)


def _compiled(request: ExportRequest) -> CompiledColumns:
    return compile_columns(
        client=request.client,
        columns=export_columns(request),
        neutralise_formulae=request.format in PREFIXED_FORMATS,
    )


def _chunks(request: ExportRequest, compiled: CompiledColumns):
    if request.format != "csv":
        return _json_python(request, compiled)
    writer = _csv_copy if connection.vendor == "postgresql" else _csv_python
    chunks = writer(request, compiled)
    return chain([(BOM, 0)], chunks) if request.bom else chunks


def _stream(audit: ExportAudit, request: ExportRequest) -> Iterator[bytes]:
    """The file's bytes, in chunks; the audit gets the row count when the last chunk has
    gone (and no completion time if the download stopped)."""
    rows = 0
    try:
        for chunk, count in _chunks(request, _compiled(request)):
            rows += count
            yield chunk
        audit.completed_at = timezone.now()
    finally:
        audit.rows = rows
        audit.save(update_fields=["rows", "completed_at"])


def export_build(audit_id: int) -> None:
    """Write a queued export to its file (the worker's side), reporting progress."""
    claimed = ExportAudit.objects.filter(pk=audit_id, status=ExportAudit.Status.QUEUED).update(
        status=ExportAudit.Status.RUNNING
    )
    if not claimed:
        return  # already taken by another worker, or not a background export
    audit = ExportAudit.objects.select_related("client").get(pk=audit_id)
    request = ExportRequest.from_audit(audit)
    settings.EXPORT_DIR.mkdir(parents=True, exist_ok=True)
    path = settings.EXPORT_DIR / f"{audit.pk}-{secrets.token_hex(8)}.{FORMATS[audit.format][1]}"
    try:
        rows = _write_file(request, path, lambda done: _progress(audit, done))
    except Exception as exc:
        path.unlink(missing_ok=True)
        ExportAudit.objects.filter(pk=audit.pk).update(
            status=ExportAudit.Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        raise
    now = timezone.now()
    finished = ExportAudit.objects.filter(pk=audit.pk, status=ExportAudit.Status.RUNNING).update(
        status=ExportAudit.Status.DONE, rows=rows, completed_at=now, file_path=str(path),
        expires_at=now + dt.timedelta(hours=settings.EXPORT_FILE_TTL_HOURS),
    )  # fmt: skip
    if not finished:
        # Stopped while it ran (an erasure of someone it may hold: the audit says so): the
        # file is nobody's to download.
        path.unlink(missing_ok=True)


def _progress(audit: ExportAudit, done: int) -> None:
    ExportAudit.objects.filter(pk=audit.pk).update(rows=done)


def _write_file(request: ExportRequest, path: Path, progress) -> int:
    compiled = _compiled(request)
    if request.format == "xlsx":
        rows = compiled.rows(export_queryset(request))
        return xlsx_write(compiled, rows, path, progress, every=PROGRESS_EVERY)
    rows = 0
    with path.open("wb") as file:
        for chunk, count in _chunks(request, compiled):
            file.write(chunk)
            if count:
                rows += count
                if rows // PROGRESS_EVERY != (rows - count) // PROGRESS_EVERY:
                    progress(rows)
    return rows


def export_download(audit: ExportAudit, *, user) -> Path:
    """The file of a finished export, recording the download (who, when); raises
    ``ExportGone`` once the file has expired."""
    if audit.status == ExportAudit.Status.EXPIRED or (
        audit.expires_at is not None and audit.expires_at <= timezone.now()
    ):
        raise ExportGone(f"This export expired at {utc_text(audit.expires_at)}.")
    with transaction.atomic():
        download = ExportDownload.objects.create(audit=audit, user=user)
        ExportAudit.objects.filter(pk=audit.pk).update(
            downloads=F("downloads") + 1, last_downloaded_at=download.downloaded_at
        )
    return Path(audit.file_path)


class ExportGone(Exception):
    pass


def utc_text(moment: dt.datetime | None) -> str:
    """How export audits show a time: in UTC, saying so, whoever looks (the audit spans
    clients in many zones)."""
    if moment is None:
        return ""
    return f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC"


def exports_purge_expired() -> int:
    """Delete the files of expired exports (beat runs this hourly); the audit rows stay."""
    expired = ExportAudit.objects.filter(
        status=ExportAudit.Status.DONE, expires_at__lte=timezone.now()
    )
    count = 0
    for audit in expired:
        Path(audit.file_path).unlink(missing_ok=True)
        count += ExportAudit.objects.filter(pk=audit.pk, status=ExportAudit.Status.DONE).update(
            status=ExportAudit.Status.EXPIRED, file_path=""
        )
    return count


def _csv_python(request: ExportRequest, compiled: CompiledColumns):
    yield CSV.line(compiled.headers).encode(), 0
    lines = CSV.lines(compiled.rows(export_queryset(request)), len(compiled.headers))
    while chunk := list(islice(lines, 1000)):
        yield "".join(chunk).encode(), len(chunk)


def _csv_copy(request: ExportRequest, compiled: CompiledColumns):
    """COPY the engine's SELECT as CSV: PostgreSQL writes the file, Python passes it on."""
    yield CSV.line(compiled.headers).encode(), 0
    lower, upper = request.bounds()
    column = {"created_at": "r.created_at", "opted_in_at": "r.opted_in_at"}[request.time_field]
    where = [f"r.client_id = {int(request.client.pk)}"]
    if lower:
        where.append(f"{column} >= {literal(lower.isoformat())}::timestamptz")
    if upper:
        where.append(f"{column} < {literal(upper.isoformat())}::timestamptz")
    if request.campaign_ids:
        where.append(f"r.campaign_id IN ({', '.join(str(int(i)) for i in request.campaign_ids)})")
    if request.search:
        where.append(referral_search_sql(request.search, alias="r"))
    rows = CSV.copy_rows(compiled, where=" AND ".join(where), order_by=f"{column}, r.id")
    # PostgreSQL sends a row per message: pass them on in chunks of about 64 KiB.
    pending: list[bytes] = []
    size = 0
    for row in rows:
        pending.append(row)
        size += len(row)
        if size >= _CHUNK:
            yield b"".join(pending), len(pending)
            pending, size = [], 0
    yield b"".join(pending), len(pending)


def _json_python(request: ExportRequest, compiled: CompiledColumns):
    headers = compiled.headers
    yield b"[", 0
    first = True
    for row in compiled.rows(export_queryset(request)):
        text = json.dumps(dict(zip(headers, row, strict=True)), ensure_ascii=False)
        yield (text if first else ",\n" + text).encode(), 1
        first = False
    yield b"]\n", 0
