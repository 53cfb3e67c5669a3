"""Date/time format: a standard date or date-time field as a pattern, ISO 8601 or an Excel
serial number, in the client's time zone or a chosen one."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal

from customfields.clock import HOUR, MINUTE, SECOND
from customfields.dateformat import DatePattern, DatePatternError, parse_pattern
from customfields.sources import (
    DATE,
    DATETIME,
    find_standard,
    iso_date,
    iso_datetime,
    sql_iso_date,
)
from customfields.transforms.base import Compiled, Errors, memoized

# Characters of a UTC text that decide a pattern's output, by its finest directive
# (microseconds: all of them, nothing to remember).
_DIGITS = {"f": None, "S": SECOND, "M": MINUTE, "H": HOUR}

_EXCEL_EPOCH = dt.datetime(1899, 12, 30)
_EXCEL_DAY = Decimal(86400)
_EXCEL_PLACES = Decimal("0.00001")


class DateTimeFormat:
    uses_source = True
    uses_raw = True  # takes the date/datetime itself, not its text

    @staticmethod
    def check(field, errors: Errors) -> None:
        standard = find_standard(field.source) if field.source else None
        if standard is None or standard.type not in (DATE, DATETIME):
            errors.add("source", "A date/time format needs a date or date-time field: "
                       "opted_in_at, created_at or birth_date.")  # fmt: skip
            return
        if field.date_output not in ("strftime", "iso8601", "excel"):
            errors.add("date_output", "Choose strftime, iso8601 or excel.")
        elif field.date_output == "strftime":
            try:
                parse_pattern(field.date_pattern, has_time=standard.type == DATETIME)
            except DatePatternError as exc:
                errors.add("date_pattern", str(exc))
        if field.time_zone and field.time_zone not in zoneinfo.available_timezones():
            errors.add("time_zone", f"{field.time_zone!r} is not an IANA time zone.")

    @staticmethod
    def build(field, context) -> Compiled:
        standard = find_standard(field.source)
        is_datetime = standard.type == DATETIME
        zone_name = field.time_zone or context.zone_name
        zone = zoneinfo.ZoneInfo(zone_name)
        # Over fetched rows the source is the database's text, read by its own function.
        fetched = None
        if context.fetched_text(standard):
            fetched = _fetched_python(field, context, zone_name)

        def local(expression: str) -> str:
            """SQL of the value's local wall time (a date as a timestamp: to_char of a date
            would convert it to the session's zone first)."""
            if is_datetime:
                return context.local_time(expression, zone_name)[0]
            return f"{expression}::timestamp"

        if field.date_output == "iso8601":
            if is_datetime:
                return Compiled(python=fetched or (lambda v: iso_datetime(v, zone)),
                                sql=lambda e: context.iso_datetime_sql(e, zone_name))  # fmt: skip
            return Compiled(python=fetched or iso_date, sql=sql_iso_date)

        if field.date_output == "excel":
            excel = _excel(is_datetime, zone, local)
            return Compiled(python=fetched or excel.python, sql=excel.sql)

        pattern = parse_pattern(field.date_pattern, has_time=is_datetime)

        def python(value) -> str:
            if value is None:
                return ""
            if is_datetime:
                return pattern.python(value.astimezone(zone))
            return pattern.python(_midnight(value))

        def sql(expression: str) -> str:
            offset = context.offset_text(expression, zone_name, "") if is_datetime else None
            return f"COALESCE({pattern.sql(local(expression), offset)}, '')"

        return Compiled(python=fetched or python, sql=sql)


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day)


def _fetched_python(field, context, zone_name: str):
    """The Python side over fetched rows, where the source is the database's text: a UTC
    date-time read by the zone's clock, or an ISO date."""
    if find_standard(field.source).type == DATETIME:
        clock = context.clock(zone_name)
        if field.date_output == "iso8601":
            return clock.iso
        if field.date_output == "excel":
            return clock.memoized(_excel_local, SECOND)
        pattern = parse_pattern(field.date_pattern, has_time=True)
        return clock.memoized(pattern.python, _DIGITS[pattern.resolution])
    if field.date_output == "iso8601":
        return lambda text: text or ""
    if field.date_output == "excel":
        day = _excel_day
    else:
        day = _date_writer(parse_pattern(field.date_pattern, has_time=False))
    return memoized(lambda text: "" if text is None else day(dt.date.fromisoformat(text)))


def _date_writer(pattern: DatePattern):
    return lambda day: pattern.python(_midnight(day))


def _excel_day(day: dt.date) -> str:
    return str((day - _EXCEL_EPOCH.date()).days)


def _excel_local(local: dt.datetime) -> str:
    moment = local.replace(tzinfo=None, microsecond=0)
    seconds = int((moment - _EXCEL_EPOCH).total_seconds())
    return str((Decimal(seconds) / _EXCEL_DAY).quantize(_EXCEL_PLACES, ROUND_HALF_UP))


def _excel(is_datetime: bool, zone: zoneinfo.ZoneInfo, local: Callable[[str], str]) -> Compiled:
    """Days since 1899-12-30 (Excel's day 0): whole days for a date; for a date-time, local
    time to the second, as a fraction with five decimals (rounded half up)."""

    if not is_datetime:
        return Compiled(
            python=lambda v: "" if v is None else _excel_day(v),
            sql=lambda e: f"COALESCE(({e} - date '1899-12-30')::text, '')",
        )

    def python(value) -> str:
        return "" if value is None else _excel_local(value.astimezone(zone))

    def sql(expression: str) -> str:
        days = (f"extract(epoch FROM date_trunc('second', {local(expression)}) - "
                "timestamp '1899-12-30') / 86400")  # fmt: skip
        return f"COALESCE(round({days}, 5)::text, '')"

    return Compiled(python=python, sql=sql)
