"""The one placeholder syntax of the product: ``{{{Field}}}``.

Used by custom-field templates and API body templates alike. A field is a standard referral
field (any case: ``{{{Email}}}`` is ``email``), ``extra.<key>``, or a custom field's name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OPEN, CLOSE = "{{{", "}}}"
_PLACEHOLDER = re.compile(r"\{\{\{(.*?)\}\}\}", re.S)


class PlaceholderSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class Placeholder:
    name: str


def parse_template(template: str) -> list[str | Placeholder]:
    """Split ``template`` into literal text and placeholders, or raise naming the problem."""
    parts: list[str | Placeholder] = []
    position = 0
    for match in _PLACEHOLDER.finditer(template):
        literal = template[position : match.start()]
        _check_literal(literal)
        if literal:
            parts.append(literal)
        name = match.group(1).strip()
        if not name:
            raise PlaceholderSyntaxError(f"Empty placeholder at character {match.start() + 1}.")
        if "{" in name or "}" in name:
            raise PlaceholderSyntaxError(f"Malformed placeholder {match.group(0)!r}.")
        parts.append(Placeholder(name))
        position = match.end()
    tail = template[position:]
    _check_literal(tail)
    if tail:
        parts.append(tail)
    return parts


def _check_literal(text: str) -> None:
    if OPEN in text:
        raise PlaceholderSyntaxError(
            f"Unclosed placeholder: {OPEN!r} without {CLOSE!r} in {text[:40]!r}."
        )
    if CLOSE in text:
        raise PlaceholderSyntaxError(f"{CLOSE!r} without an opening {OPEN!r}.")
