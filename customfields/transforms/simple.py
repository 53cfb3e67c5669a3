"""Constant, case and hash: transforms with one setting each."""

from __future__ import annotations

import hashlib

from customfields.sqltext import literal
from customfields.text import (
    ASCII_WHITESPACE,
    ascii_lower,
    ascii_title,
    ascii_trim,
    ascii_upper,
)
from customfields.transforms.base import Compiled, Errors, check_text, memoized

# Under the "C" collation PostgreSQL changes the case of ASCII letters only and takes every
# other byte for a word boundary, whatever the database's locale: the rules of
# customfields.text, at no cost.


def sql_upper(expression: str) -> str:
    return f'upper({expression} COLLATE "C")'


def sql_lower(expression: str) -> str:
    return f'lower({expression} COLLATE "C")'


def sql_title(expression: str) -> str:
    return f'initcap({expression} COLLATE "C")'


def sql_trim(expression: str) -> str:
    return f"btrim({expression}, {literal(ASCII_WHITESPACE)})"


class Constant:
    uses_source = False

    @staticmethod
    def check(field, errors: Errors) -> None:
        check_text(errors, "constant", field.constant)

    @staticmethod
    def build(field, context) -> Compiled:
        value = field.constant
        return Compiled(python=None, sql=lambda _: literal(value), expr=context.bind(value))


class Case:
    uses_source = True
    _FUNCTIONS = {
        "upper": (ascii_upper, sql_upper),
        "lower": (ascii_lower, sql_lower),
        "title": (ascii_title, sql_title),
    }

    @classmethod
    def check(cls, field, errors: Errors) -> None:
        if field.case not in cls._FUNCTIONS:
            errors.add("case", "Choose upper, lower or title.")

    @classmethod
    def build(cls, field, context) -> Compiled:
        python, sql = cls._FUNCTIONS[field.case]
        return Compiled(python=memoized(python), sql=sql)


class Hash:
    """sha256 or md5 (hex) of the trimmed, lower-cased value, as ad platforms match hashed
    emails; an empty value stays empty rather than becoming the hash of nothing."""

    uses_source = True
    _ALGORITHMS = ("sha256", "md5")

    @classmethod
    def check(cls, field, errors: Errors) -> None:
        if field.algorithm not in cls._ALGORITHMS:
            errors.add("algorithm", "Choose sha256 or md5.")

    @staticmethod
    def build(field, context) -> Compiled:
        digest = getattr(hashlib, field.algorithm)

        def python(value: str) -> str:
            normal = ascii_lower(ascii_trim(value))
            return digest(normal.encode("utf-8", "surrogatepass")).hexdigest() if normal else ""

        def sql(expression: str) -> str:
            normal = f"NULLIF({sql_lower(sql_trim(expression))}, '')"  # empty: NULL, then ""
            if field.algorithm == "sha256":
                return f"COALESCE(encode(sha256(convert_to({normal}, 'UTF8')), 'hex'), '')"
            return f"COALESCE(md5({normal}), '')"

        return Compiled(python=python, sql=sql)
