"""File names of a batch, from the delivery's template.

The template uses the product's one placeholder syntax (``{{{batch}}}``). Names depend only on
the batch (its number and the run time frozen with it), so a resent batch has the same names
and replaces its own files.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from django.utils.text import slugify

from customfields.placeholders import Placeholder, PlaceholderSyntaxError, parse_template

PLACEHOLDERS = {
    "client": "the client's slug",
    "delivery": "the delivery's name, slugified",
    "batch": "the batch number, six digits (000042)",
    "date": "run date, YYYYMMDD",
    "time": "run time, HHMMSS",
    "timestamp": "run date and time, YYYYMMDDHHMMSS",
    "part": "the part number (1, 2, ...) when a batch is split",
}
# A batch's files must never take another batch's names.
_UNIQUE_BY = ("batch", "timestamp")
_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")


class FileNameError(ValueError):
    pass


def file_name_check(template: str) -> None:
    """Raise ``FileNameError`` naming the problem unless ``template`` makes safe, unique names."""
    try:
        parts = parse_template(template)
    except PlaceholderSyntaxError as exc:
        raise FileNameError(str(exc)) from None
    names = {part.name.lower() for part in parts if isinstance(part, Placeholder)}
    unknown = sorted(names - PLACEHOLDERS.keys())
    if unknown:
        raise FileNameError(
            f"Unknown placeholder {{{{{{{unknown[0]}}}}}}}; use one of: " + ", ".join(PLACEHOLDERS)
        )
    if not names & set(_UNIQUE_BY):
        raise FileNameError(
            "Include {{{batch}}} or {{{timestamp}}}, so batches never share a name."
        )
    literal = "".join(part for part in parts if isinstance(part, str))
    if literal and not _SAFE.match(literal):
        raise FileNameError(
            "File names may hold only letters, digits, '.', '_' and '-' (no folders or spaces)."
        )
    if literal.startswith("."):
        raise FileNameError("A file name must not start with '.' (hidden, and used for uploads).")


def batch_file_names(delivery, batch, parts: int) -> list[str]:
    """The name of each of the batch's ``parts`` files, in order. Raises ``FileNameError``
    as the save's check does for a template saved before that check existed."""
    template = delivery.file_name_template
    file_name_check(template)
    zone = dt.UTC if delivery.name_time_zone == "utc" else ZoneInfo(delivery.client.time_zone)
    run_at = batch.run_at.astimezone(zone)
    values = {
        "client": delivery.client.slug,
        "delivery": slugify(delivery.name) or f"delivery-{delivery.pk}",
        "batch": f"{batch.number:06d}",
        "date": run_at.strftime("%Y%m%d"),
        "time": run_at.strftime("%H%M%S"),
        "timestamp": run_at.strftime("%Y%m%d%H%M%S"),
    }
    parsed = parse_template(template)
    has_part = any(isinstance(p, Placeholder) and p.name.lower() == "part" for p in parsed)
    names = []
    for number in range(1, parts + 1):
        values["part"] = str(number)
        name = "".join(
            part if isinstance(part, str) else values[part.name.lower()] for part in parsed
        )
        if parts > 1 and not has_part:
            name = _before_extension(name, f"_part{number}")
        if batch.kind == "redelivery":
            name = _before_extension(name, "_redelivery")
        if delivery.gzip:
            name += ".gz"
        names.append(name)
    return names


def _before_extension(name: str, suffix: str) -> str:
    stem, dot, extension = name.rpartition(".")
    return f"{stem}{suffix}.{extension}" if dot and stem else f"{name}{suffix}"
