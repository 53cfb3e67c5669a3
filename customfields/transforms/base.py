from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from customfields.sqltext import literal


class Errors(defaultdict):
    """Messages per model field name. A message added with ``conflict=True`` is about the
    state of stored rows (a name taken, a field in use, a cycle through other fields), not
    about the definition itself: the API answers 409 when every message is one."""

    def __init__(self) -> None:
        super().__init__(list)
        self.invalid = False

    def add(self, field: str, message: str, *, conflict: bool = False) -> None:
        self[field].append(message)
        self.invalid = self.invalid or not conflict

    @property
    def only_conflicts(self) -> bool:
        return bool(self) and not self.invalid


@dataclass(frozen=True)
class Compiled:
    """A transform ready to run: the same function in Python and in SQL.

    ``python`` takes the source's value; a transform without a source (template, constant)
    gives ``expr`` instead, a Python expression over other values (see engine.Value).
    """

    python: Callable[[Any], str] | None
    sql: Callable[[str | None], str]
    expr: str | None = None


def memoized(function: Callable[[str], str], size: int = 4096) -> Callable[[str], str]:
    """``function`` with a bounded cache: a value map or a case change sees the same few
    values (genders, cities) again and again."""
    cache: dict[str, str] = {}

    def run(value: str) -> str:
        try:
            return cache[value]
        except KeyError:
            result = function(value)
            if len(cache) < size:
                cache[value] = result
            return result

    return run


def check_text(errors: Errors, field: str, value: str) -> None:
    if "\x00" in value:
        errors.add(field, "NUL characters are not allowed.")


__all__ = ["Compiled", "Errors", "check_text", "literal"]
