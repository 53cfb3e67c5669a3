from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from customfields.models import CustomField
from customfields.validation import custom_field_dependents, custom_field_errors


def custom_field_validate(candidate: CustomField) -> None:
    """Raise ``ValidationError`` with a message per offending field, or return."""
    others = CustomField.objects.filter(client_id=candidate.client_id)
    errors = custom_field_errors(candidate, others=others)
    if errors:
        raise ValidationError(dict(errors))


@transaction.atomic
def custom_field_save(candidate: CustomField) -> CustomField:
    # Lock the client's fields: two saves at once must not build a cycle between them.
    list(CustomField.objects.select_for_update().filter(client_id=candidate.client_id))
    custom_field_validate(candidate)
    candidate.save()
    return candidate


def custom_field_delete_problem(field: CustomField) -> str | None:
    """Why ``field`` cannot be deleted (other fields refer to it), or ``None``."""
    others = CustomField.objects.filter(client_id=field.client_id)
    dependents = custom_field_dependents(field, others=others)
    if not dependents:
        return None
    names = ", ".join(sorted(d.name for d in dependents))
    return f"{names} refer to {field.name!r}: change them before deleting it."


@transaction.atomic
def custom_field_delete(field: CustomField) -> None:
    list(CustomField.objects.select_for_update().filter(client_id=field.client_id))
    problem = custom_field_delete_problem(field)
    if problem:
        raise ValidationError(problem)
    field.delete()
