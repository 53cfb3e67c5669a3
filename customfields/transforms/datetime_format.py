"""Date/time format: a standard date or date-time field as a pattern, ISO 8601 or an Excel
serial number, in the client's time zone or a chosen one."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal

from customfields.dateformat import DatePatternError, parse_pattern
from customfields.sources import DATE, DATETIME, find_standard, iso_date, iso_datetime
from customfields.transforms.base import Compiled, Errors

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
        is_datetime = find_standard(field.source).type == DATETIME
        zone_name = field.time_zone or context.zone_name
        zone = zoneinfo.ZoneInfo(zone_name)

        def local(expression: str) -> str:
            """SQL of the value's local wall time (a date stays as it is)."""
            return context.local_time(expression, zone_name)[0] if is_datetime else expression

        if field.date_output == "iso8601":
            if is_datetime:
                return Compiled(python=lambda v: iso_datetime(v, zone),
                                sql=lambda e: context.iso_datetime_sql(e, zone_name))  # fmt: skip
            return Compiled(python=iso_date,
                            sql=lambda e: f"COALESCE(to_char({e}, 'YYYY-MM-DD'), '')")  # fmt: skip

        if field.date_output == "excel":
            return _excel(is_datetime, zone, local)

        pattern = parse_pattern(field.date_pattern, has_time=is_datetime)

        def python(value) -> str:
            if value is None:
                return ""
            if is_datetime:
                return pattern.python(value.astimezone(zone))
            return pattern.python(dt.datetime(value.year, value.month, value.day))

        def sql(expression: str) -> str:
            offset = context.offset_text(expression, zone_name, "") if is_datetime else None
            return f"COALESCE({pattern.sql(local(expression), offset)}, '')"

        return Compiled(python=python, sql=sql)


def _excel(is_datetime: bool, zone: zoneinfo.ZoneInfo, local: Callable[[str], str]) -> Compiled:
    """Days since 1899-12-30 (Excel's day 0): whole days for a date; for a date-time, local
    time to the second, as a fraction with five decimals (rounded half up)."""

    if not is_datetime:
        return Compiled(
            python=lambda v: "" if v is None else str((v - _EXCEL_EPOCH.date()).days),
            sql=lambda e: f"COALESCE(({e} - date '1899-12-30')::text, '')",
        )

    def python(value) -> str:
        if value is None:
            return ""
        moment = value.astimezone(zone).replace(tzinfo=None, microsecond=0)
        seconds = int((moment - _EXCEL_EPOCH).total_seconds())
        return str((Decimal(seconds) / _EXCEL_DAY).quantize(_EXCEL_PLACES, ROUND_HALF_UP))

    def sql(expression: str) -> str:
        days = (f"extract(epoch FROM date_trunc('second', {local(expression)}) - "
                "timestamp '1899-12-30') / 86400")  # fmt: skip
        return f"COALESCE(round({days}, 5)::text, '')"

    return Compiled(python=python, sql=sql)
