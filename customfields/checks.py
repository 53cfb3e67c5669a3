"""Start-up checks of what the SQL back end needs from the database (run by ``migrate`` and
``manage.py check --database default``)."""

from __future__ import annotations

from django.core.checks import Error, Tags, register
from django.db import connections

from customfields.text import UNICODE_COLLATION


def collation_missing(alias: str, collation: str = UNICODE_COLLATION) -> Error | None:
    """An error if PostgreSQL at ``alias`` lacks ``collation`` (a quoted identifier)."""
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_collation WHERE collname = %s", [collation.strip('"')])
        if cursor.fetchone():
            return None
    return Error(
        f"PostgreSQL has no {collation} collation: custom fields' case changes follow Unicode "
        "through it.",
        hint="Use a PostgreSQL built with ICU (Debian's and the official images are).",
        id="customfields.E001",
    )


@register(Tags.database)
def check_unicode_collation(databases=None, **kwargs) -> list[Error]:
    errors = (collation_missing(alias) for alias in databases or ())
    return [error for error in errors if error is not None]
