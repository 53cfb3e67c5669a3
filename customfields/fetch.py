"""Rows for the Python back end, fetched as the database holds them.

The ORM turns every date-time into an aware datetime (PostgreSQL: a loader written in Python,
~6 us a value; SQLite: a regex parse, then ``make_aware``), only for the engine to turn it back
into text. Here date-times, dates and (on PostgreSQL) decimals arrive as the database's own
text, which is already the output (dates, decimals) or is read cheaply (``customfields.clock``);
on SQLite decimals arrive as the number it stores (``sources.float_decimal_text`` reads it as
Django does); every other column arrives as the ORM gives it (Django's converters still run
for those, e.g. JSON). ``dialect_for`` is ``None`` where that contract cannot hold (another
database, a session not in UTC, dates not in ISO style): the caller then uses the ORM's values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import FloatField, TextField
from django.db.models.functions import Cast
from django.utils.dateparse import parse_datetime

from customfields.sources import DATE, DATETIME, DECIMAL, StandardField


@dataclass(frozen=True)
class Dialect:
    """What a database's fetched rows hold, and how its date-time text reads."""

    vendor: str
    text_types: frozenset[str]  # standard field types that arrive as the database's text
    float_decimals: bool  # decimals arrive as the float the database stores
    fits: Callable[[str], bool]  # the shape ``ZoneClock``'s fast path reads (UTC)
    parse: Callable[[str], dt.datetime]  # any date-time text -> aware datetime


def _sqlite_datetime(text: str) -> dt.datetime:
    """As Django's SQLite converters read a stored date-time (naive means UTC)."""
    value = parse_datetime(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


DIALECTS = {
    # PostgreSQL writes a timestamptz in the session's zone (UTC here) with "+00".
    "postgresql": Dialect("postgresql", frozenset({DATETIME, DATE, DECIMAL}), False,
                          fits=lambda text: text.endswith("+00"),
                          parse=dt.datetime.fromisoformat),
    # Django stores str(naive UTC datetime): "YYYY-MM-DD HH:MM:SS[.ffffff]".
    "sqlite": Dialect("sqlite", frozenset({DATETIME, DATE}), True,
                      fits=lambda text: len(text) in (19, 26),
                      parse=_sqlite_datetime),
}  # fmt: skip
_POSTGRES_TEXT_TYPES = ("timestamptz", "date", "numeric")


def dialect_for(queryset) -> Dialect | None:
    connection = connections[queryset.db]
    dialect = DIALECTS.get(connection.vendor)
    if dialect is None or connection.timezone_name != "UTC":
        return None
    if dialect.vendor == "postgresql":
        connection.ensure_connection()
        status = connection.connection.pgconn.parameter_status
        if status(b"TimeZone") != b"UTC" or not (status(b"DateStyle") or b"").startswith(b"ISO"):
            return None
    return dialect


def fetched_rows(
    queryset, fields: list[StandardField | None], lookups: list[str], dialect: Dialect,
    chunk_size: int,
) -> Iterator[tuple]:  # fmt: skip
    """The rows of ``queryset`` over ``lookups`` (``fields``: each lookup's standard field, or
    ``None`` for ``extra``), with the ``dialect``'s text types as text."""
    if dialect.vendor == "sqlite":
        # A cast column has no declared type, nor Django converters: sqlite3 hands over the
        # stored text (or number) as it is.
        columns = [
            _sqlite_column(lookup, field, dialect)
            for field, lookup in zip(fields, lookups, strict=True)
        ]
        yield from queryset.values_list(*columns).iterator(chunk_size=chunk_size)
        return
    yield from _postgres_rows(queryset.values_list(*lookups), chunk_size)


def _sqlite_column(lookup: str, field: StandardField | None, dialect: Dialect):
    if field is not None and field.type in dialect.text_types:
        return Cast(lookup, TextField())
    if field is not None and field.type == DECIMAL:
        return Cast(lookup, FloatField())
    return lookup


def _postgres_rows(values, chunk_size: int) -> Iterator[tuple]:
    from psycopg.types.string import TextLoader

    compiler = values.query.get_compiler(using=values.db)
    try:
        sql, params = compiler.as_sql()
    except EmptyResultSet:
        return
    converters = compiler.get_converters([column for column, _, _ in compiler.select])
    with connections[values.db].chunked_cursor() as cursor:
        # Loaders of this cursor only: other queries on the connection keep the ORM's types.
        for name in _POSTGRES_TEXT_TYPES:
            cursor.cursor.adapters.register_loader(name, TextLoader)
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(chunk_size):
            yield from compiler.apply_converters(rows, converters) if converters else rows
