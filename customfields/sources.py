"""Standard referral fields as text, the same in Python and in PostgreSQL.

Every value an output shows is text. Each standard field has one rendering, written twice: a
Python function over the value the ORM returns, and a SQL expression over the row. Empty and
missing values are "" in both.
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import Any

from customfields.sqltext import literal

# type -> how a value of that type becomes text
TEXT, INTEGER, DECIMAL, DATE, DATETIME, IP, ID = (
    "text", "integer", "decimal", "date", "datetime", "ip", "id",
)  # fmt: skip


@dataclass(frozen=True)
class StandardField:
    name: str
    type: str
    lookup: str  # for values_list()
    column: str  # SQL over aliases r (referral), c (client), cp (campaign)


def _fields() -> dict[str, StandardField]:
    text = [
        "external_id", "email", "title", "first_name", "last_name", "gender", "mobile",
        "address1", "address2", "city", "state", "zip_code", "country", "language", "user_agent",
        "browser", "browser_version", "os", "device", "ad_text", "ad_response", "audience_id",
        "audience_name", "currency", "confirmation_ref",
    ]  # fmt: skip
    fields = {name: StandardField(name, TEXT, name, f'r."{name}"') for name in text}
    fields.update({
        "id": StandardField("id", ID, "id", "r.id"),
        "client": StandardField("client", TEXT, "client__slug", "c.slug"),
        "campaign": StandardField("campaign", TEXT, "campaign__external_id", "cp.external_id"),
        "campaign_name": StandardField("campaign_name", TEXT, "campaign__name", "cp.name"),
        "birth_date": StandardField("birth_date", DATE, "birth_date", "r.birth_date"),
        "age": StandardField("age", INTEGER, "age", "r.age"),
        "ip_address": StandardField("ip_address", IP, "ip_address", "r.ip_address"),
        "bid_price": StandardField("bid_price", DECIMAL, "bid_price", "r.bid_price"),
        "opted_in_at": StandardField("opted_in_at", DATETIME, "opted_in_at", "r.opted_in_at"),
        "created_at": StandardField("created_at", DATETIME, "created_at", "r.created_at"),
    })  # fmt: skip
    return fields


STANDARD_FIELDS: dict[str, StandardField] = _fields()
EXTRA_PREFIX = "extra."


def find_standard(name: str) -> StandardField | None:
    """Standard fields answer to any case: ``Email`` is ``email``."""
    return STANDARD_FIELDS.get(name.lower())


def extra_key(name: str) -> str | None:
    """The key of an ``extra.<key>`` reference, else ``None``."""
    if name[: len(EXTRA_PREFIX)].lower() == EXTRA_PREFIX and len(name) > len(EXTRA_PREFIX):
        return name[len(EXTRA_PREFIX) :]
    return None


# --- Python renderings ----------------------------------------------------------------------


def iso_offset(offset: dt.timedelta | None, separator: str = ":") -> str:
    seconds = int(offset.total_seconds()) if offset is not None else 0
    sign = "-" if seconds < 0 else "+"
    seconds = abs(seconds)
    text = f"{sign}{seconds // 3600:02d}{separator}{seconds % 3600 // 60:02d}"
    if seconds % 60:
        text += f"{separator}{seconds % 60:02d}"
    return text


def iso_datetime(value: dt.datetime | None, zone: zoneinfo.ZoneInfo) -> str:
    # isoformat writes the offset as iso_offset does, seconds included when there are any.
    return "" if value is None else value.astimezone(zone).isoformat(timespec="seconds")


def iso_date(value: dt.date | None) -> str:
    return "" if value is None else value.isoformat()


def decimal_text(value: Decimal | None) -> str:
    if value is None:
        return ""
    # PostgreSQL's numeric(12,4) prints four decimals and has no negative zero.
    return f"{value:.4f}" if value else "0.0000"


# As Django reads a decimal SQLite stored as a number: 15 significant digits (the rest is the
# float's noise), then the field's places, in the field's precision (numeric(12,4)).
_FROM_FLOAT = Context(prec=15).create_decimal_from_float
_PLACES, _PRECISION = Decimal("0.0001"), Context(prec=12)


def float_decimal_text(value: float | None) -> str:
    """``decimal_text`` of a decimal stored as a number (fetched rows on SQLite)."""
    if value is None:
        return ""
    return decimal_text(_FROM_FLOAT(value).quantize(_PLACES, context=_PRECISION))


def optional_text(value: Any) -> str:
    return "" if value is None else str(value)


def python_renderer(field: StandardField, zone: zoneinfo.ZoneInfo) -> Callable[[Any], str] | None:
    """How a value of ``field`` becomes text in Python; ``None`` where it already is text."""
    if field.type == TEXT:
        return None
    if field.type == DATETIME:
        return lambda value: iso_datetime(value, zone)
    if field.type == DATE:
        return iso_date
    if field.type == DECIMAL:
        return decimal_text
    return optional_text  # integer, id, ip (the ORM returns the address as text)


def extra_text(extra: Any, key: str) -> str:
    """``extra.<key>`` as PostgreSQL's ``extra ->> key`` prints it."""
    if not isinstance(extra, dict):
        return ""
    value = extra.get(key)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return jsonb_text(value)


def jsonb_text(value: Any) -> str:
    """JSON as PostgreSQL prints jsonb: keys by length then bytes, ", " and ": ", numbers in
    plain decimal notation."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        number = Decimal(repr(value))
        return format(number if number else abs(number), "f")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(jsonb_text(item) for item in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: (len(kv[0].encode()), kv[0].encode()))
        body = ", ".join(f"{json.dumps(k, ensure_ascii=False)}: {jsonb_text(v)}" for k, v in items)
        return "{" + body + "}"
    return str(value)


# --- SQL renderings -------------------------------------------------------------------------


def sql_local_time(timestamp_sql: str, zone_sql: str) -> tuple[str, str]:
    """SQL of (the local wall time of ``timestamp_sql`` in ``zone_sql``, its UTC offset as an
    interval). Written inline wherever a column needs them: a conversion costs ~0.1 us a row,
    while a LATERAL subquery computing them once per row cost ~1 us a row in rescans."""
    local = f"({timestamp_sql} AT TIME ZONE {zone_sql})"
    return local, f"({local} - {sql_utc_wall_time(timestamp_sql)})"


def sql_utc_wall_time(timestamp_sql: str) -> str:
    # A zone given as an interval needs no look-up of the zone by name: the cheap way to UTC.
    return f"({timestamp_sql} AT TIME ZONE INTERVAL '+00:00')"


def sql_offset(offset: str, separator: str = ":", usual: Iterable[int] = ()) -> str:
    """SQL writing an ``offset`` interval (see ``sql_local_time``) as ``iso_offset`` does; the
    ``usual`` offsets of the zone (its standard and summer time), in seconds, are looked up as
    constants, the cheap common case."""
    shortcuts = " ".join(
        f"WHEN interval '{int(value)} seconds' "
        f"THEN {literal(iso_offset(dt.timedelta(seconds=value), separator))}"
        for value in sorted(set(usual))
    )
    general = _sql_offset_formula(f"extract(epoch FROM {offset})::int", separator)
    return f"(CASE {offset} {shortcuts} ELSE {general} END)" if shortcuts else general


def usual_offsets(zone: zoneinfo.ZoneInfo) -> list[int]:
    """The zone's offsets in January and July of this year and the last: nearly every
    timestamp a deployment renders has one of these."""
    year = dt.date.today().year
    moments = [dt.datetime(y, m, 15, 12, tzinfo=dt.UTC) for y in (year - 1, year) for m in (1, 7)]
    return sorted({int(moment.astimezone(zone).utcoffset().total_seconds()) for moment in moments})


def _sql_offset_formula(seconds: str, separator: str) -> str:
    magnitude = f"abs({seconds})"
    sep = literal(separator)
    return (
        f"(CASE WHEN {seconds} < 0 THEN '-' ELSE '+' END || "
        f"lpad(({magnitude} / 3600)::text, 2, '0') || {sep} || "
        f"lpad(({magnitude} % 3600 / 60)::text, 2, '0') || "
        f"CASE WHEN {magnitude} % 60 <> 0 THEN {sep} || lpad(({magnitude} % 60)::text, 2, '0') "
        f"ELSE '' END)"
    )


_ISO_SECONDS = "'YYYY-MM-DD\"T\"HH24:MI:SS'"


def sql_iso_datetime(timestamp_sql: str, zone_sql: str, usual: Iterable[int]) -> str:
    """``timestamp_sql`` in ``zone_sql`` as ``iso_datetime`` writes it. At one of the zone's
    ``usual`` offsets (see ``sql_offset``) the local time is the UTC one shifted by a constant:
    one look-up of the zone a value (the offset), not two."""
    local, offset = sql_local_time(timestamp_sql, zone_sql)
    utc = sql_utc_wall_time(timestamp_sql)
    shortcuts = " ".join(
        f"WHEN interval '{int(value)} seconds' THEN to_char({utc} + interval "
        f"'{int(value)} seconds', {_ISO_SECONDS}) || "
        f"{literal(iso_offset(dt.timedelta(seconds=value)))}"
        for value in sorted(set(usual))
    )
    seconds = f"extract(epoch FROM {offset})::int"
    general = f"to_char({local}, {_ISO_SECONDS}) || {_sql_offset_formula(seconds, ':')}"
    return f"COALESCE(CASE {offset} {shortcuts} ELSE {general} END, '')"


def sql_iso_date(date_sql: str) -> str:
    # to_char of a date casts it to timestamptz, in the session's zone (slow, and needless).
    return f"COALESCE(to_char({date_sql}::timestamp, 'YYYY-MM-DD'), '')"


def sql_renderer(field: StandardField, iso_datetime_sql: Callable[[str], str]) -> str:
    """SQL text of ``field``; ``iso_datetime_sql(timestamp_sql)`` writes a date-time in the
    client's zone."""
    column = field.column
    if field.type == TEXT:
        return column
    if field.type == DATETIME:
        return iso_datetime_sql(column)
    if field.type == DATE:
        return sql_iso_date(column)
    if field.type == IP:
        return f"COALESCE(host({column}), '')"
    return f"COALESCE({column}::text, '')"  # integer, id, decimal


def sql_extra(key: str) -> str:
    return f"COALESCE(r.extra ->> {literal(key)}, '')"
