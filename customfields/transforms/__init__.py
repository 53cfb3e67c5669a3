"""One small class per custom-field kind, all with the same shape.

``check(field, errors)`` adds messages, keyed by the model field at fault, for a definition
that could fail or differ between back ends; ``build(field, context)`` returns a ``Compiled``
transform, made once per run: ``python(value)`` turns one value into text with no parsing, and
``sql(expression)`` writes the same in PostgreSQL.
"""

from __future__ import annotations

from customfields.transforms.base import Compiled, Errors
from customfields.transforms.datetime_format import DateTimeFormat
from customfields.transforms.simple import Case, Constant, Hash
from customfields.transforms.template import Template
from customfields.transforms.value_map import ValueMap

TRANSFORMS = {
    "value_map": ValueMap,
    "datetime": DateTimeFormat,
    "template": Template,
    "constant": Constant,
    "case": Case,
    "hash": Hash,
}

__all__ = ["TRANSFORMS", "Compiled", "Errors"]
