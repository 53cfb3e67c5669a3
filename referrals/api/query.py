"""Query parameters read strictly, as the schema documents them.

A parameter left out means "no filter" (or the default); one that is given must be valid: a
value given empty, given twice, or outside its documented type or range is refused with a
400 naming it. Ignoring it instead would answer another question than the one asked (all
deliveries for ``?active=yes``, the first page for ``?offset=null``).
"""

from __future__ import annotations

import datetime
import re

import django_filters
from django import forms
from django.core.validators import validate_slug
from drf_spectacular.utils import extend_schema_field
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

REPEATED = "Give this parameter once."
EMPTY = "This parameter is empty: give a value, or leave it out."
NOT_BOOLEAN = 'Must be "true" or "false".'
NOT_INTEGER = "A valid integer is required."
NOT_DATE_TIME = (
    "Enter an RFC 3339 date-time with its offset, in years 0001-9999, such as 2024-05-01T12:00:00Z."
)

# ASCII digits only: int() also takes " 7", "7_0" and other scripts' digits.
_INTEGER = re.compile(r"-?[0-9]+")
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)
_UTC_MIN = datetime.datetime.min.replace(tzinfo=datetime.UTC)
_UTC_MAX = datetime.datetime.max.replace(tzinfo=datetime.UTC)


def integer_from_text(text: str, minimum: int, maximum: int) -> int:
    """The integer ``text`` spells, within ``minimum..maximum``; else ValueError(message)."""
    if not _INTEGER.fullmatch(text):
        raise ValueError(NOT_INTEGER)
    negative = text.startswith("-")
    digits = text.lstrip("-").lstrip("0") or "0"
    # Past 19 digits it is beyond every bound here (and int() refuses thousands of digits).
    value = int(text) if len(digits) <= 19 else (minimum - 1 if negative else maximum + 1)
    if value < minimum:
        raise ValueError(f"Ensure this value is greater than or equal to {minimum}.")
    if value > maximum:
        raise ValueError(f"Ensure this value is less than or equal to {maximum}.")
    return value


def boolean_from_text(text: str) -> bool:
    """``true`` or ``false``, as OpenAPI writes a boolean in a query; else ValueError."""
    if text not in ("true", "false"):
        raise ValueError(NOT_BOOLEAN)
    return text == "true"


def instant_from_text(text: str) -> datetime.datetime:
    """The UTC instant an RFC 3339 date-time names (the schema's ``format: date-time``).

    An instant whose UTC time falls outside years 1-9999 (``9999-12-31T23:59:59-12:00``) is
    still a valid date-time: it is taken as the first or last representable instant, which
    no stored time precedes or follows. A leap second (``23:59:60`` UTC) is the minute's end.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(NOT_DATE_TIME)
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    micro = int((match[7] or "").ljust(6, "0")[:6])
    sign, offset_hours, offset_minutes = match[8], int(match[9] or 0), int(match[10] or 0)
    if offset_hours > 23 or offset_minutes > 59:
        raise ValueError(NOT_DATE_TIME)
    offset = datetime.timedelta(hours=offset_hours, minutes=offset_minutes)
    offset = -offset if sign == "-" else offset
    leap = second == 60
    # RFC 3339 has leap seconds only at 23:59:60 UTC.
    if leap and (hour * 60 + minute - offset // datetime.timedelta(minutes=1)) % 1440 != 1439:
        raise ValueError(NOT_DATE_TIME)
    try:
        local = datetime.datetime(year, month, day, hour, minute, 59 if leap else second, micro)
    except ValueError:
        raise ValueError(NOT_DATE_TIME) from None
    try:
        instant = local.replace(tzinfo=datetime.timezone(offset)).astimezone(datetime.UTC)
        return instant + datetime.timedelta(seconds=1) if leap else instant
    except OverflowError:
        return _UTC_MAX if year == 9999 else _UTC_MIN


def query_value(request: Request, name: str) -> str | None:
    """The one value of parameter ``name``, or None when it is left out."""
    values = request.query_params.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise ValidationError({name: [REPEATED]})
    if values[0] == "":
        raise ValidationError({name: [EMPTY]})
    return values[0]


def query_integer(request: Request, name: str, minimum: int, maximum: int) -> int | None:
    """The integer parameter ``name`` within its range, or None when it is left out."""
    text = query_value(request, name)
    if text is None:
        return None
    try:
        return integer_from_text(text, minimum, maximum)
    except ValueError as exc:
        raise ValidationError({name: [str(exc)]}) from None


def integer_parameter(name: str, minimum: int, maximum: int, description: str, **extra) -> dict:
    """An OpenAPI query parameter for an integer, with its range."""
    schema = {"type": "integer", "minimum": minimum, "maximum": maximum, **extra}
    return {
        "name": name, "required": False, "in": "query", "description": description,
        "schema": schema,
    }  # fmt: skip


# --- django-filter: a FilterSet whose form refuses what the schema does not allow -----------


class StrictQueryForm(forms.Form):
    """A filter form that refuses a parameter given twice or given empty."""

    def clean(self):
        for name in self.fields:
            values = self.data.getlist(name) if hasattr(self.data, "getlist") else []
            if len(values) > 1:
                self.add_error(name, REPEATED)
            elif values == [""]:
                self.add_error(name, EMPTY)
        return super().clean()


class StrictFilterSet(django_filters.FilterSet):
    def get_form_class(self):
        fields = {name: filter_.field for name, filter_ in self.filters.items()}
        return type(f"{type(self).__name__}Form", (StrictQueryForm,), fields)


class _ParsedField(forms.Field):
    """A form field whose text is read by one of the parsers above."""

    def parse(self, text: str):
        raise NotImplementedError

    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return self.parse(value)
        except ValueError as exc:
            raise forms.ValidationError(str(exc), code="invalid") from None


class _BooleanField(_ParsedField):
    def parse(self, text: str) -> bool:
        return boolean_from_text(text)


class _InstantField(_ParsedField):
    def parse(self, text: str) -> datetime.datetime:
        return instant_from_text(text)


class BooleanFilter(django_filters.BooleanFilter):
    """``true`` or ``false`` only (django-filter takes ``yes`` or ``null`` as no filter)."""

    field_class = _BooleanField


class DateTimeFilter(django_filters.IsoDateTimeFilter):
    """An RFC 3339 date-time, compared in UTC."""

    field_class = _InstantField


SLUG_PATTERN = "^[-a-zA-Z0-9_]+$"


def slug_filter(field_name: str, description: str) -> django_filters.CharFilter:
    """A slug, exactly as stored: letters, digits, ``-`` and ``_``, up to 100."""
    schema = {"type": "string", "pattern": SLUG_PATTERN, "maxLength": 100}
    return extend_schema_field({**schema, "description": description})(
        django_filters.CharFilter(
            field_name=field_name, max_length=100, strip=False, validators=[validate_slug]
        )
    )


def text_filter(field_name: str, description: str, max_length: int) -> django_filters.CharFilter:
    """Text compared as given (no trimming), up to ``max_length``; no NUL (never stored)."""
    schema = {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": "^[^\\x00]+$"}
    return extend_schema_field({**schema, "description": description})(
        django_filters.CharFilter(field_name=field_name, max_length=max_length, strip=False)
    )
