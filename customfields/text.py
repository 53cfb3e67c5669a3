"""Text rules shared by both back ends, chosen so Python and PostgreSQL agree to the byte.

Case changes touch ASCII letters only, and trimming strips ASCII white space only: Unicode case
mapping differs between Python, glibc and PostgreSQL collations (``ß``, ``İ``, final sigma), so
a rule that may differ between back ends is not offered. Names in non-Latin scripts pass
through unchanged.
"""

from __future__ import annotations

import string

ASCII_WHITESPACE = " \t\n\r\x0b\x0c"
_TO_UPPER = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)
_TO_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def ascii_upper(value: str) -> str:
    return value.translate(_TO_UPPER)


def ascii_lower(value: str) -> str:
    return value.translate(_TO_LOWER)


def ascii_title(value: str) -> str:
    """Each space-separated word: first character upper-cased, the rest lower-cased."""
    return " ".join(ascii_upper(word[:1]) + ascii_lower(word[1:]) for word in value.split(" "))


def ascii_trim(value: str) -> str:
    return value.strip(ASCII_WHITESPACE)
