"""Value map: ordered rules (equals, contains, regex) from an input to an output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from customfields.portable_regex import PortableRegexError, compile_portable
from customfields.sqltext import literal
from customfields.text import ascii_lower, sql_ascii_lower
from customfields.transforms.base import Compiled, Errors, memoized

MATCHES = ("equals", "contains", "regex")  # regex last: the schema's rules say so
MAX_RULES = 200
RULE_KEYS = ("match", "value", "output", "case_sensitive")
# One rule, as the API schema publishes it; ``_rule_problem`` checks exactly this (and that a
# regex compiles portably, which no schema can say).
_RULE_PROPERTIES = {
    "value": {"type": "string"},
    "output": {"type": "string"},
    "case_sensitive": {"type": "boolean", "default": True},
}
RULE_SCHEMA = {
    "description": "The first rule that matches the input gives the output. A regex rule's "
    "value must be a regular expression that PostgreSQL and Python read alike.",
    "oneOf": [
        {
            "type": "object",
            "properties": {"match": {"type": "string", "enum": list(MATCHES[:-1])},
                           **_RULE_PROPERTIES},
            "required": ["match", "value", "output"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {"match": {"type": "string", "enum": ["regex"]},
                           **_RULE_PROPERTIES, "value": {"type": "string", "minLength": 1}},
            "required": ["match", "value", "output"],
            "additionalProperties": False,
        },
    ],
}  # fmt: skip
# Regex rules look at the value's first characters only, in both back ends, so a huge value
# costs the same as a short one.
REGEX_WINDOW = 10_000


class ValueMap:
    uses_source = True

    @classmethod
    def check(cls, field, errors: Errors) -> None:
        if field.rules == []:
            errors.add("rules", "Give at least one rule, as a list.")
        cls.check_rules(field.rules, errors, compile_regex=True)
        for name in ("empty_default", "no_match_default"):
            if "\x00" in getattr(field, name):
                errors.add(name, "NUL characters are not allowed.")
        if field.no_match not in ("default", "passthrough"):
            errors.add("no_match", "Choose default or passthrough.")

    @staticmethod
    def check_rules(rules: Any, errors: Errors, *, compile_regex: bool = False) -> None:
        """Rules of any kind's definition: other kinds ignore them, but keep only their
        documented shape. A regex is compiled only where it will run (a value map's check)."""
        if not isinstance(rules, list):
            errors.add("rules", "Give the rules as a list.")
            return
        if len(rules) > MAX_RULES:
            errors.add("rules", f"At most {MAX_RULES} rules.")
        for number, rule in enumerate(rules, start=1):
            problem = _rule_problem(rule, compile_regex=compile_regex)
            if problem:
                errors.add("rules", f"Rule {number}: {problem}")

    @staticmethod
    def build(field, context) -> Compiled:
        rules = [_compile_rule(rule) for rule in field.rules]
        empty, passthrough = field.empty_default, field.no_match == "passthrough"
        fallback = field.no_match_default

        def python(value: str) -> str:
            if value == "":
                return empty
            for matches, output, _ in rules:
                if matches(value):
                    return output
            return value if passthrough else fallback

        def sql(expression: str) -> str:
            whens = " ".join(
                f"WHEN {condition(expression)} THEN {literal(output)}"
                for _, output, condition in rules
            )
            otherwise = expression if passthrough else literal(fallback)
            return (
                f"(CASE WHEN {expression} = '' THEN {literal(empty)} {whens} ELSE {otherwise} END)"
            )

        return Compiled(python=memoized(python), sql=sql)


def _rule_problem(rule: Any, *, compile_regex: bool) -> str | None:
    if not isinstance(rule, dict):
        return "must be an object with match, value and output."
    unknown = set(rule) - set(RULE_KEYS)
    if unknown:
        return f"unknown keys {', '.join(sorted(unknown))}."
    if rule.get("match") not in MATCHES:
        return f"match must be one of {', '.join(MATCHES)}."
    for key in ("value", "output"):
        if not isinstance(rule.get(key), str):
            return f"{key} must be text."
        if "\x00" in rule[key]:
            return f"{key} holds a NUL character."
    if not isinstance(rule.get("case_sensitive", True), bool):
        return "case_sensitive must be true or false."
    if rule["match"] == "regex" and not rule["value"]:
        return "a regex rule needs a pattern."
    if rule["match"] == "regex" and compile_regex:
        try:
            compile_portable(rule["value"], case_sensitive=rule.get("case_sensitive", True))
        except PortableRegexError as exc:
            return f"invalid regex: {exc}"
    return None


def _compile_rule(rule: dict) -> tuple[Callable[[str], bool], str, Callable[[str], str]]:
    """(Python test, output, SQL condition writer) for one checked rule."""
    match, value, output = rule["match"], rule["value"], rule["output"]
    sensitive = rule.get("case_sensitive", True)
    fold: Callable[[str], str] = (lambda text: text) if sensitive else ascii_lower
    fold_sql: Callable[[str], str] = (lambda text: text) if sensitive else sql_ascii_lower
    if match == "equals":
        target = fold(value)
        return (lambda text: fold(text) == target, output,
                lambda e: f"{fold_sql(e)} = {literal(target)}")  # fmt: skip
    if match == "contains":
        target = fold(value)
        return (lambda text: target in fold(text), output,
                lambda e: f"strpos({fold_sql(e)}, {literal(target)}) > 0")  # fmt: skip
    regex = compile_portable(value, case_sensitive=sensitive)
    search = regex.python.search
    return (
        lambda text: search(fold(text[:REGEX_WINDOW])) is not None,
        output,
        lambda e: f"{fold_sql(f'left({e}, {REGEX_WINDOW})')} ~ {literal(regex.postgres)}",
    )
