"""Serializer fields that take only the JSON type the schema documents.

DRF is lenient by default: a ``CharField`` takes ``12`` as ``"12"``, an ``IntegerField`` takes
``"12"``, a ``BooleanField`` takes ``"yes"`` and ``1``. A client generated from the schema
would never send those, and an integrator testing with a schema-driven tool sees the API
accept what its own contract refuses. These fields refuse them with the field's usual
message; ``StrictModelSerializer`` builds its model fields from them.
"""

from __future__ import annotations

from functools import cache

from rest_framework import serializers


def _is_number(data) -> bool:
    return isinstance(data, int | float) and not isinstance(data, bool)


def _accepts(field: serializers.Field, data) -> bool:
    if isinstance(field, serializers.BooleanField):
        return isinstance(data, bool)
    if isinstance(field, serializers.IntegerField):
        return _is_number(data) and float(data).is_integer()
    if isinstance(field, serializers.FloatField | serializers.DecimalField):
        return _is_number(data)
    if isinstance(field, serializers.CharField | serializers.ChoiceField):
        return isinstance(data, str)
    return True


def text_too_long(field: serializers.Field, data) -> None:
    """Refuse text longer than the field's ``maxLength`` as sent: DRF measures it after
    trimming white space, so "x" and 2,000 spaces would pass a 2,000 limit the schema states."""
    limit = getattr(field, "max_length", None)
    text = isinstance(field, serializers.CharField) and isinstance(data, str)
    if text and limit is not None and len(data) > limit:
        field.fail("max_length", max_length=limit)


@cache
def strict(field_class: type[serializers.Field]) -> type[serializers.Field]:
    """``field_class``, refusing a value of another JSON type than the schema gives it."""
    if getattr(field_class, "json_type_checked", False):
        return field_class

    def to_internal_value(self, data):
        if not _accepts(self, data):
            key = "invalid" if "invalid" in self.error_messages else "invalid_choice"
            self.fail(key, input=data)
        text_too_long(self, data)
        return super(cls, self).to_internal_value(data)

    cls = type(
        f"Strict{field_class.__name__}",
        (field_class,),
        {"to_internal_value": to_internal_value, "json_type_checked": True,
         "__module__": __name__},
    )  # fmt: skip
    return cls


StrictCharField = strict(serializers.CharField)
StrictChoiceField = strict(serializers.ChoiceField)
StrictIntegerField = strict(serializers.IntegerField)
StrictFloatField = strict(serializers.FloatField)
StrictBooleanField = strict(serializers.BooleanField)


class StrictModelSerializer(serializers.ModelSerializer):
    """A model serializer whose fields built from the model take only their JSON type."""

    def build_standard_field(self, field_name, model_field):
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        return strict(field_class), kwargs
