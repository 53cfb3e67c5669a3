from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from customfields.sqltext import literal


class Errors(defaultdict):
    """Messages per model field name."""

    def __init__(self) -> None:
        super().__init__(list)

    def add(self, field: str, message: str) -> None:
        self[field].append(message)


@dataclass(frozen=True)
class Compiled:
    """A transform ready to run: the same function in Python and in SQL."""

    python: Callable[[Any], str]
    sql: Callable[[str], str]


def check_text(errors: Errors, field: str, value: str) -> None:
    if "\x00" in value:
        errors.add(field, "NUL characters are not allowed.")


__all__ = ["Compiled", "Errors", "check_text", "literal"]
