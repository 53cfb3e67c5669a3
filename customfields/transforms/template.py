"""Template: text with ``{{{Field}}}`` placeholders of standard, extra and custom fields."""

from __future__ import annotations

from customfields.placeholders import Placeholder, PlaceholderSyntaxError, parse_template
from customfields.sqltext import literal
from customfields.transforms.base import Compiled, Errors

MAX_LENGTH = 5000


class Template:
    uses_source = False

    @staticmethod
    def check(field, errors: Errors) -> None:
        if not field.template:
            errors.add("template", "The template is empty.")
        elif len(field.template) > MAX_LENGTH:
            errors.add("template", f"The template is longer than {MAX_LENGTH} characters.")
        elif "\x00" in field.template:
            errors.add("template", "NUL characters are not allowed.")
        else:
            try:
                parse_template(field.template)
            except PlaceholderSyntaxError as exc:
                errors.add("template", str(exc))

    @staticmethod
    def references(field) -> list[str]:
        return [p.name for p in parse_template(field.template) if isinstance(p, Placeholder)]

    @staticmethod
    def build(field, context) -> Compiled:
        parts = [
            context.resolve(part.name) if isinstance(part, Placeholder) else part
            for part in parse_template(field.template)
        ]
        # Literal text is bound by name, never written into the generated code.
        python = [context.bind(p) if isinstance(p, str) else p.expr for p in parts]
        pieces = [literal(p) if isinstance(p, str) else p.sql for p in parts]
        return Compiled(
            python=None,
            sql=lambda _: "(" + " || ".join(pieces) + ")",
            expr="(" + " + ".join(python) + ")",
        )
