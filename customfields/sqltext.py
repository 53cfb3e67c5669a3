"""SQL string literals for generated SELECTs (which COPY cannot take as parameters)."""

from __future__ import annotations


def literal(value: str) -> str:
    """A standard-conforming SQL string literal (the PostgreSQL default since 9.1).

    Custom-field definitions refuse NUL characters before they get here.
    """
    if "\x00" in value:
        raise ValueError("SQL text cannot hold a NUL character")
    return "'" + value.replace("'", "''") + "'"
