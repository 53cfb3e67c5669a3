"""Constant, case and hash: transforms with one setting each."""

from __future__ import annotations

import hashlib

from customfields.sqltext import literal
from customfields.text import (
    ascii_lower,
    ascii_trim,
    sql_ascii_lower,
    sql_ascii_trim,
    sql_unicode_lower,
    sql_unicode_title,
    sql_unicode_upper,
    unicode_lower,
    unicode_title,
    unicode_upper,
)
from customfields.transforms.base import Compiled, Errors, check_text, memoized


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
        "upper": (unicode_upper, sql_unicode_upper),
        "lower": (unicode_lower, sql_unicode_lower),
        "title": (unicode_title, sql_unicode_title),
    }

    @classmethod
    def check(cls, field, errors: Errors) -> None:
        if field.case not in cls._FUNCTIONS:
            errors.add("case", "Choose upper, lower or title.")

    @classmethod
    def build(cls, field, context) -> Compiled:
        python, sql = cls._FUNCTIONS[field.case]
        return Compiled(python=memoized(python), sql=sql)


def hash_input(value: str) -> str:
    """What the hash transform hashes of ``value``: trimmed and lower-cased (ASCII only, as ad
    platforms do). Finding a person by email for an erasure normalises it with this too."""
    return ascii_lower(ascii_trim(value))


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
            normal = hash_input(value)
            return digest(normal.encode("utf-8", "surrogatepass")).hexdigest() if normal else ""

        def sql(expression: str) -> str:
            # empty: NULL, then ""
            normal = f"NULLIF({sql_ascii_lower(sql_ascii_trim(expression))}, '')"
            if field.algorithm == "sha256":
                return f"COALESCE(encode(sha256(convert_to({normal}, 'UTF8')), 'hex'), '')"
            return f"COALESCE(md5({normal}), '')"

        return Compiled(python=python, sql=sql)
