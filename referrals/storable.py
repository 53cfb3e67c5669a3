"""Text PostgreSQL can store: no NUL character (its text and JSON types refuse it) and no
lone surrogate (no Unicode character; not encodable as UTF-8).

One check for every way input arrives: API bodies (``referrals.api.parsers``), query
parameters and admin form fields (``StorableTextValidator``), ingestion's ``extra``.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

NOT_STORABLE = "Null characters and lone surrogates are not allowed."


def storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unstorable_path(value: Any) -> str | None:
    """Where in ``value`` (text, or JSON-like data, keys included) the first text that cannot
    be stored is, as ``[0].name`` (``""`` for ``value`` itself); ``None`` if all can be."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if not storable(item):
                return path
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and not storable(key):
                    return path
                stack.append((child, f"{path}.{key}"))
        elif isinstance(item, list | tuple):
            stack.extend((child, f"{path}[{index}]") for index, child in enumerate(item))
    return None


def not_storable_message(path: str) -> str:
    return f"{NOT_STORABLE} (at {path.lstrip('.')})" if path else NOT_STORABLE


@deconstructible
class StorableTextValidator:
    """Refuses a value holding text that cannot be stored, wherever it is nested."""

    code = "not_storable"

    def __call__(self, value: Any) -> None:
        path = unstorable_path(value)
        if path is not None:
            raise ValidationError(not_storable_message(path), code=self.code)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StorableTextValidator)


class StorableFormFields:
    """An admin (model admin or inline) whose JSON form fields refuse text that cannot be
    stored; its text fields already do (Django's own NUL check, and a form post decodes to no
    lone surrogate)."""

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if isinstance(formfield, forms.JSONField):
            formfield.validators.append(StorableTextValidator())
        return formfield
