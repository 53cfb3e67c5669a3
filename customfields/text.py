"""Text rules shared by both back ends, each in Python and in SQL, so that Python and
PostgreSQL agree to the byte.

Case changes (the "case" kind) follow Unicode: ``straße`` -> ``STRASSE``, ``żółć`` -> ``ŻÓŁĆ``,
``éLODIE d'arc`` -> ``Élodie D'Arc``. Python's ``str.upper``/``lower`` and PostgreSQL's
``upper``/``lower`` under the ICU root collation ("und-x-icu") apply the same full Unicode
mappings (compared over every code point with ICU 72; the property tests hold them equal); the "C"
collation would change ASCII letters only, and a libc locale would map one character to one
(``ß`` kept). Title case is defined here, not borrowed from ``str.title`` or ``initcap``, which
disagree on what a word is: a word starts at a letter or decimal digit and goes on over
letters, digits and combining marks (so ``o'neil`` -> ``O'Neil``, ``1st`` -> ``1st``); its first
character gets its Unicode title case, the rest is lower-cased.

Case-insensitive matching and hashing fold ASCII letters only, and trimming strips ASCII white
space only: a hashed email must hash as the receiver's own normalisation does.
"""

from __future__ import annotations

import functools
import re
import string
import unicodedata

from customfields.sqltext import literal

ASCII_WHITESPACE = " \t\n\r\x0b\x0c"
_TO_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
# PostgreSQL's ICU root collation: Unicode's default (language-neutral) case mappings.
UNICODE_COLLATION = '"und-x-icu"'


def ascii_lower(value: str) -> str:
    return value.translate(_TO_LOWER)


def ascii_trim(value: str) -> str:
    return value.strip(ASCII_WHITESPACE)


def sql_ascii_lower(expression: str) -> str:
    return f'lower({expression} COLLATE "C")'  # the "C" collation changes ASCII letters only


def sql_ascii_trim(expression: str) -> str:
    return f"btrim({expression}, {literal(ASCII_WHITESPACE)})"


def unicode_upper(value: str) -> str:
    return value.upper()


def unicode_lower(value: str) -> str:
    return value.lower()


def sql_unicode_upper(expression: str) -> str:
    return f"upper({expression} COLLATE {UNICODE_COLLATION})"


def sql_unicode_lower(expression: str) -> str:
    return f"lower({expression} COLLATE {UNICODE_COLLATION})"


# Planes 4 to 13 hold no character; 15 and 16 are private use (no letters, digits or marks).
_ASSIGNED = (range(0x40000), range(0xE0000, 0xF0000))


def _class(*prefixes: str) -> str:
    """A bracket expression of the code points whose general category starts with one of
    ``prefixes``, as ranges of \\u/\\U escapes, which Python's ``re`` and PostgreSQL's
    regular expressions read alike (one set by construction, whatever either's Unicode)."""
    ranges: list[list[int]] = []
    for code in (code for plane in _ASSIGNED for code in plane):
        if unicodedata.category(chr(code)).startswith(prefixes):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])

    def escape(code: int) -> str:
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"

    return "[" + "".join(
        escape(low) if low == high else f"{escape(low)}-{escape(high)}" for low, high in ranges
    ) + "]"  # fmt: skip


@functools.cache
def _words() -> tuple[re.Pattern, str]:
    """(Python pattern of a word, SQL pattern of a word or a run of anything else: together
    they cover the text). Built on first use: it reads every code point's category."""
    start, goes_on = _class("L", "Nd"), _class("L", "Nd", "M")
    return re.compile(f"({start})({goes_on}*)"), f"({start})({goes_on}*)|([^{start[1:]}+)"


def unicode_title(value: str) -> str:
    """Each word's first character in title case, the rest lower-cased (module docstring)."""
    return _words()[0].sub(_capitalize, value)


def _capitalize(match: re.Match) -> str:
    return match.group(1).title() + match.group(2).lower()


def sql_unicode_title(expression: str) -> str:
    # ASCII text (one byte a character), most of it: initcap under "C" is this rule there, at
    # ~1/6 of the cost of splitting into words with the Unicode classes (bench/customfields.py).
    # Otherwise regexp_matches splits the text into words and the runs between them, in order.
    first = f"initcap(m[1] COLLATE {UNICODE_COLLATION})"
    word = f"{first} || {sql_unicode_lower('m[2]')}"
    words = (
        f"(SELECT COALESCE(string_agg(CASE WHEN m[1] IS NULL THEN m[3] ELSE {word} END, '' "
        f"ORDER BY n), '') FROM regexp_matches({expression}, {literal(_words()[1])}, 'g') "
        "WITH ORDINALITY AS words(m, n))"
    )
    return (
        f"CASE WHEN octet_length({expression}) = char_length({expression}) "
        f'THEN initcap({expression} COLLATE "C") ELSE {words} END'
    )
