"""Regular expressions that mean the same in Python and in PostgreSQL.

Python runs rules with RE2 (linear time: no pattern can make one value take hours), PostgreSQL
with its ARE engine. The two differ in details (``\\w`` and locales, look-arounds,
back-references, class syntax), so rules accept a small common subset, parsed here once and
written out in a form both engines read the same way:

- literal characters, and ``\\`` before any punctuation character for the literal;
  ``\\t \\n \\r``;
- ``.`` (any character, newlines included), ``^`` and ``$`` (start and end of the value);
- bracket classes ``[abc]``, ``[^abc]``, ASCII ranges within ``a-z``, ``A-Z`` or ``0-9``;
- groups ``( )``, alternation ``|``, quantifiers ``* + ? {m} {m,} {m,n}`` (up to 255).

Refused: class escapes (``\\d \\w \\s \\b``), look-arounds and other ``(?`` groups,
back-references, lazy or stacked quantifiers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import re2

from customfields.text import ascii_lower

MAX_LENGTH = 500
MAX_REPEAT = 255
_META = set(".^$*+?()[]{}|\\")
_CONTROL_ESCAPES = {"t": "\t", "n": "\n", "r": "\r"}


class PortableRegexError(ValueError):
    pass


@dataclass(frozen=True)
class PortableRegex:
    python: re2._Regexp
    postgres: str


def compile_portable(pattern: str, *, case_sensitive: bool = True) -> PortableRegex:
    """Validate ``pattern`` and write it for both engines.

    Without case sensitivity, both the pattern and the value are ASCII-lower-cased first
    (``customfields.text``), so the match itself is always case-sensitive.
    """
    if not pattern:
        raise PortableRegexError("The pattern is empty.")
    if len(pattern) > MAX_LENGTH:
        raise PortableRegexError(f"The pattern is longer than {MAX_LENGTH} characters.")
    if "\x00" in pattern:
        raise PortableRegexError("The pattern holds a NUL character.")
    if not case_sensitive:
        pattern = ascii_lower(pattern)
    written = _Translator(pattern).run()
    options = re2.Options()
    options.dot_nl = True  # PostgreSQL's "." matches a newline too
    try:
        compiled = re2.compile(written, options)
    except re2.error as exc:  # the translator should have refused it first
        raise PortableRegexError(f"Invalid pattern: {exc}.") from None
    return PortableRegex(python=compiled, postgres=written)


class _Translator:
    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.pos = 0
        self.out: list[str] = []

    def fail(self, message: str) -> None:
        raise PortableRegexError(f"{message} (at character {self.pos + 1}).")

    def run(self) -> str:
        self.alternation()
        if self.pos != len(self.pattern):
            self.fail("Unbalanced ')'")
        return "".join(self.out)

    def emit(self, text: str) -> None:
        self.out.append(text)

    def alternation(self) -> None:
        self.sequence()
        while self.peek() == "|":
            self.pos += 1
            self.emit("|")
            self.sequence()

    def sequence(self) -> None:
        while self.pos < len(self.pattern) and self.peek() not in "|)":
            self.atom()
            self.quantifier()

    def peek(self) -> str:
        return self.pattern[self.pos] if self.pos < len(self.pattern) else ""

    def atom(self) -> None:
        char = self.peek()
        if char in "*+?{":
            self.fail(f"Nothing to repeat before {char!r}")
        if char == "(":
            if self.pattern.startswith("(?", self.pos):
                self.fail("Groups starting with '(?' are not supported")
            self.pos += 1
            self.emit("(")
            self.alternation()
            if self.peek() != ")":
                self.fail("Missing ')'")
            self.pos += 1
            self.emit(")")
        elif char == "[":
            self.bracket()
        elif char in ".^$":  # any character, start, end (of the whole value in both)
            self.pos += 1
            self.emit(char)
        elif char == "\\":
            self.emit(_literal(self.escape()))
        else:
            self.pos += 1
            self.emit(_literal(char))

    def escape(self) -> str:
        self.pos += 1
        if self.pos >= len(self.pattern):
            self.fail("Trailing backslash")
        char = self.pattern[self.pos]
        self.pos += 1
        if char in _CONTROL_ESCAPES:
            return _CONTROL_ESCAPES[char]
        if char.isascii() and not char.isalnum() and char.isprintable() and char != " ":
            return char
        self.pos -= 1
        self.fail(f"Unsupported escape '\\{char}'")
        return ""

    def quantifier(self) -> None:
        char = self.peek()
        if char not in ("*", "+", "?", "{"):
            return
        start = self.pos
        if char == "{":
            match = re.compile(r"\{(\d{1,3})(,(\d{0,3}))?\}").match(self.pattern, self.pos)
            if not match:
                self.fail("Malformed repetition; use {m}, {m,} or {m,n}")
            low = int(match.group(1))
            high = match.group(3)
            if low > MAX_REPEAT or (high and int(high) > MAX_REPEAT):
                self.fail(f"Repetition counts go up to {MAX_REPEAT}")
            if high and int(high) < low:
                self.fail("Repetition {m,n} needs m <= n")
            self.pos = match.end()
        else:
            self.pos += 1
        if self.peek() in ("*", "+", "?", "{"):
            self.fail("Lazy or stacked quantifiers are not supported")
        self.emit(self.pattern[start : self.pos])

    def bracket(self) -> None:
        start = self.pos
        self.pos += 1
        negate = self.peek() == "^"
        if negate:
            self.pos += 1
        items: list[tuple[str, str]] = []
        while True:
            if self.pos >= len(self.pattern):
                self.pos = start
                self.fail("Missing ']'")
            char = self.pattern[self.pos]
            if char == "]" and items:
                self.pos += 1
                break
            if char == "[":
                self.fail("'[' inside a class must be escaped as '\\['")
            low = self.escape() if char == "\\" else self.take()
            if self.peek() == "-" and self.pattern[self.pos + 1 : self.pos + 2] not in ("]", ""):
                self.pos += 1
                high = self.escape() if self.peek() == "\\" else self.take()
                if not _same_ascii_range(low, high):
                    self.fail(f"Range {low}-{high} must lie within a-z, A-Z or 0-9, low to high")
                items.append((low, high))
            else:
                items.append((low, low))
        body = "".join(_class_char(a) if a == b else f"{a}-{b}" for a, b in items)
        self.emit(f"[{'^' if negate else ''}{body}]")

    def take(self) -> str:
        char = self.pattern[self.pos]
        self.pos += 1
        return char


def _same_ascii_range(low: str, high: str) -> bool:
    for alphabet in ("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789"):
        if low in alphabet and high in alphabet and len(low) == len(high) == 1:
            return low <= high
    return False


def _literal(char: str) -> str:
    return "\\" + char if char in _META else char


def _class_char(char: str) -> str:
    # Both engines read a backslash in a class as an escape; escape what is special there.
    return "\\" + char if char in "\\]^-[" else char
