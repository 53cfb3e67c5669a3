"""SQL string literals for generated SELECTs (which COPY cannot take as parameters)."""

from __future__ import annotations


def literal(value: str) -> str:
    """An escape-string literal (``E'...'``): PostgreSQL reads it the same whether
    ``standard_conforming_strings`` is on or off, so a backslash in staff-written text never
    changes what a statement means, whatever a server or a role has set.

    Custom-field definitions refuse NUL characters before they get here.
    """
    if "\x00" in value:
        raise ValueError("SQL text cannot hold a NUL character")
    return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
