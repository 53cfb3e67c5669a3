"""Every write to custom fields, for every surface (admin, inline, API, scripts).

Validation reads other rows (cycles, names, what refers to a field), so each write first
locks its client (``custom_fields_lock``) and validates under that lock: two saves at once
cannot each see a valid state and together store an invalid one.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from customfields.models import CustomField
from customfields.usage import custom_field_users, in_use_message
from customfields.validation import custom_field_errors
from referrals.models import Client


class CustomFieldConflict(ValidationError):
    """The change is refused for what stored rows are (a name taken, a field in use, a cycle
    through other fields), not for what was asked: the API answers it with 409."""


def custom_fields_lock(client_id: int) -> None:
    """Serialise, until the transaction ends, every change to ``client_id``'s custom fields
    and to what refers to them (deliveries take it too). No-op outside PostgreSQL."""
    # The client's row, which always exists (a new client's first fields race too). FOR NO
    # KEY UPDATE leaves the foreign-key checks of referrals being stored (FOR KEY SHARE) free.
    list(Client.objects.select_for_update(no_key=True).filter(pk=client_id).values_list("pk"))


def custom_field_validate(candidate: CustomField) -> None:
    """Raise ``ValidationError`` with a message per offending field, or return."""
    others = CustomField.objects.filter(client_id=candidate.client_id)
    errors = custom_field_errors(candidate, others=others)
    if errors:
        raise (CustomFieldConflict if errors.only_conflicts else ValidationError)(dict(errors))


@transaction.atomic
def custom_field_save(candidate: CustomField) -> CustomField:
    custom_fields_lock(candidate.client_id)
    custom_field_validate(candidate)
    candidate.save()
    return candidate


def custom_field_delete_problem(field: CustomField) -> str | None:
    """Why ``field`` cannot be deleted (something names it), or ``None``."""
    users = custom_field_users(field)
    return in_use_message(field, users, change="delete") if users else None


@transaction.atomic
def custom_field_delete(field: CustomField) -> None:
    custom_fields_lock(field.client_id)
    stored = CustomField.objects.filter(pk=field.pk).first()  # as it is now, under the lock
    if stored is None:
        return
    problem = custom_field_delete_problem(stored)
    if problem:
        raise CustomFieldConflict(problem)
    stored.delete()
