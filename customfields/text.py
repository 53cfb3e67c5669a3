"""Text rules shared by both back ends, chosen so Python and PostgreSQL agree to the byte.

Case changes touch ASCII letters only, and trimming strips ASCII white space only: Unicode case
mapping differs between Python, glibc and PostgreSQL collations (``ß``, ``İ``, final sigma), so
a rule that may differ between back ends is not offered. Names in non-Latin scripts pass
through unchanged.
"""

from __future__ import annotations

import re
import string

ASCII_WHITESPACE = " \t\n\r\x0b\x0c"
_TO_UPPER = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)
_TO_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_WORD = re.compile(r"[A-Za-z0-9]+")


def ascii_upper(value: str) -> str:
    return value.translate(_TO_UPPER)


def ascii_lower(value: str) -> str:
    return value.translate(_TO_LOWER)


def ascii_title(value: str) -> str:
    """Each run of ASCII letters and digits: first character upper-cased, the rest
    lower-cased (``mARY-jane o'neil`` -> ``Mary-Jane O'Neil``); as PostgreSQL's ``initcap``
    under the "C" collation."""
    return _WORD.sub(_capitalize, value)


def _capitalize(match: re.Match) -> str:
    word = match.group()
    return word[0].upper() + word[1:].lower()


def ascii_trim(value: str) -> str:
    return value.strip(ASCII_WHITESPACE)
