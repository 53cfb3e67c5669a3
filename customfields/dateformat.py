"""strftime patterns, rendered identically by Python and by PostgreSQL's ``to_char``.

Only directives with an exact ``to_char`` twin are accepted; both sides are written here from
one parse, so a pattern cannot mean two things. Names are English, as ``to_char`` writes them
without the ``TM`` prefix.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from customfields.sources import iso_offset

_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"]  # fmt: skip
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

# directive -> (needs a time of day, Python writer, to_char code)
_DIRECTIVES: dict[str, tuple[bool, Callable[[dt.datetime], str], str]] = {
    "Y": (False, lambda d: f"{d.year:04d}", "YYYY"),
    "y": (False, lambda d: f"{d.year % 100:02d}", "YY"),
    "m": (False, lambda d: f"{d.month:02d}", "MM"),
    "d": (False, lambda d: f"{d.day:02d}", "DD"),
    "j": (False, lambda d: f"{d.timetuple().tm_yday:03d}", "DDD"),
    "b": (False, lambda d: _MONTHS[d.month - 1][:3], "Mon"),
    "B": (False, lambda d: _MONTHS[d.month - 1], "FMMonth"),
    "a": (False, lambda d: _DAYS[d.weekday()][:3], "Dy"),
    "A": (False, lambda d: _DAYS[d.weekday()], "FMDay"),
    "H": (True, lambda d: f"{d.hour:02d}", "HH24"),
    "I": (True, lambda d: f"{(d.hour % 12) or 12:02d}", "HH12"),
    "p": (True, lambda d: "AM" if d.hour < 12 else "PM", "AM"),
    "M": (True, lambda d: f"{d.minute:02d}", "MI"),
    "S": (True, lambda d: f"{d.second:02d}", "SS"),
    "f": (True, lambda d: f"{d.microsecond:06d}", "US"),
}
OFFSET = "z"
SUPPORTED = "".join(sorted(_DIRECTIVES)) + OFFSET


class DatePatternError(ValueError):
    pass


def pattern_regex(*, has_time: bool) -> str:
    """The patterns ``parse_pattern`` accepts, as a regular expression that reads the same in
    Python and ECMAScript (the API schema publishes it): text without NUL, each ``%`` followed
    by a supported directive or another ``%``."""
    codes = sorted(d for d, (needs_time, *_) in _DIRECTIVES.items() if has_time or not needs_time)
    codes += [OFFSET] if has_time else []
    return "^(?:[^%\\x00]|%[" + "".join(codes) + "%])+$"


@dataclass(frozen=True)
class _Literal:
    text: str


@dataclass(frozen=True)
class _Code:
    directive: str


# Directives str.format writes by itself from the datetime's attributes (the fast path).
_FORMAT_FIELDS = {
    "Y": "{0.year:04d}", "m": "{0.month:02d}", "d": "{0.day:02d}", "H": "{0.hour:02d}",
    "M": "{0.minute:02d}", "S": "{0.second:02d}", "f": "{0.microsecond:06d}",
}  # fmt: skip


@dataclass(frozen=True)
class DatePattern:
    parts: tuple

    @cached_property
    def python(self) -> Callable[[dt.datetime], str]:
        """The pattern as one ``str.format`` call on a local datetime (literal braces
        escaped), plus a writer for each directive it cannot name itself."""
        template: list[str] = []
        writers: dict[str, Callable[[dt.datetime], str]] = {}
        for part in self.parts:
            if isinstance(part, _Literal):
                template.append(part.text.replace("{", "{{").replace("}", "}}"))
            elif part.directive in _FORMAT_FIELDS:
                template.append(_FORMAT_FIELDS[part.directive])
            else:
                name = f"w{len(writers)}"
                writers[name] = (
                    _offset_writer if part.directive == OFFSET else _DIRECTIVES[part.directive][1]
                )
                template.append("{" + name + "}")
        text = "".join(template)
        items = list(writers.items())
        if not items:
            return text.format
        return lambda local: text.format(local, **{name: write(local) for name, write in items})

    @cached_property
    def resolution(self) -> str:
        """The finest directive the pattern uses, of "f", "S", "M", or "H" for anything coarser
        (the hour, the day, the offset)."""
        directives = {part.directive for part in self.parts if isinstance(part, _Code)}
        return next((d for d in "fSM" if d in directives), "H")

    def sql(self, local: str, offset_text: str | None) -> str:
        """SQL text of the pattern for a local timestamp (or a date, with no time
        directives); ``offset_text`` is the SQL of the row's ``+HHMM`` offset for %z."""
        pieces: list[str] = []
        run: list[str] = []  # to_char codes and quoted literals, between offsets

        def flush() -> None:
            if run:
                pieces.append(f"to_char({local}, '{_sql_quote(''.join(run))}')")
                run.clear()

        for part in self.parts:
            if isinstance(part, _Literal):
                run.append('"' + part.text.replace("\\", "\\\\").replace('"', '\\"') + '"')
            elif part.directive == OFFSET:
                flush()
                pieces.append(offset_text or "''")
            else:
                run.append(_DIRECTIVES[part.directive][2] + '""')  # "" ends the code
        flush()
        return "(" + " || ".join(pieces) + ")" if pieces else "''"


def _offset_writer(local: dt.datetime) -> str:
    return iso_offset(local.utcoffset(), separator="")


def parse_pattern(pattern: str, *, has_time: bool) -> DatePattern:
    if not pattern:
        raise DatePatternError("The pattern is empty.")
    if "\x00" in pattern:
        raise DatePatternError("The pattern holds a NUL character.")
    parts: list[_Literal | _Code] = []
    literal: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char != "%":
            literal.append(char)
            index += 1
            continue
        if index + 1 >= len(pattern):
            raise DatePatternError("The pattern ends with a lone '%'; write '%%' for a percent.")
        directive = pattern[index + 1]
        index += 2
        if directive == "%":
            literal.append("%")
            continue
        if directive != OFFSET and directive not in _DIRECTIVES:
            raise DatePatternError(
                f"'%{directive}' is not supported; use one of "
                + " ".join(f"%{d}" for d in SUPPORTED) + " or %%."
            )  # fmt: skip
        needs_time = directive == OFFSET or _DIRECTIVES[directive][0]
        if needs_time and not has_time:
            raise DatePatternError(f"'%{directive}' needs a date-time; the source is a date.")
        if literal:
            parts.append(_Literal("".join(literal)))
            literal = []
        parts.append(_Code(directive))
    if literal:
        parts.append(_Literal("".join(literal)))
    return DatePattern(tuple(parts))


def _sql_quote(text: str) -> str:
    return text.replace("'", "''")
