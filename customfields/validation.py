"""Checks a custom-field definition before it is saved, in the admin and the API alike.

Every problem comes back as a message on the model field at fault, and a definition that
passes can never fail at render time: it is compiled and run on an empty referral here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from customfields.engine import Column, CycleError, UnknownReference, compile_columns
from customfields.models import CustomField
from customfields.sources import STANDARD_FIELDS, extra_key, find_standard
from customfields.transforms import TRANSFORMS, Errors
from customfields.transforms.value_map import ValueMap
from customfields.usage import custom_field_users, field_references, in_use_message

NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
RESERVED_NAMES = {*STANDARD_FIELDS, "extra"}


def custom_field_errors(candidate: CustomField, *, others: Iterable[CustomField]) -> Errors:
    """Problems with ``candidate`` among its client's ``others``, by model field name."""
    others = [other for other in others if other.pk is None or other.pk != candidate.pk]
    errors = Errors()
    _check_name(candidate, others, errors)
    _check_rename(candidate, errors)
    transform = TRANSFORMS.get(candidate.kind)
    if transform is None:
        errors.add("kind", f"Choose one of: {', '.join(TRANSFORMS)}.")
        return errors
    transform.check(candidate, errors)
    if transform is not ValueMap:
        ValueMap.check_rules(candidate.rules, errors)
    if errors:
        return errors
    known = {other.name.lower() for other in others} | {candidate.name.lower()}
    for field_name, reference in field_references(candidate, transform):
        problem = _reference_problem(reference, known)
        if problem:
            errors.add(field_name, problem)
    if errors:
        return errors
    _check_compiles(candidate, others, errors)
    return errors


def columns_problem(*, client, columns: list[Column]) -> str | None:
    """Why ``columns`` cannot be computed for ``client`` (an unknown field, a broken custom
    field: the message names it), or ``None``."""
    try:
        compile_columns(client=client, columns=columns)
    except (UnknownReference, CycleError) as exc:
        return str(exc)
    return None


def sent_value_errors(values: dict, *, kind: str) -> Errors:
    """Problems with some settings of a definition on their own, whatever the stored
    definition they change: a name's form, the rules' shape (and, for a value map, their
    regexes). A PATCH is refused with 400 for these, and with 409 for the rest (what its
    values make together with the stored definition and the client's other fields)."""
    errors = Errors()
    if "name" in values:
        _check_name_form(values["name"], errors)
    if "rules" in values:
        ValueMap.check_rules(values["rules"], errors, compile_regex=kind == "value_map")
    return errors


def _check_name_form(name: str, errors: Errors) -> bool:
    if not NAME_PATTERN.fullmatch(name or ""):
        errors.add("name", "Use letters, digits and underscores, starting with a letter "
                   "(at most 64 characters).")  # fmt: skip
    elif name.lower() in RESERVED_NAMES:
        errors.add("name", f"{name!r} is a standard field's name; choose another.")
    else:
        return True
    return False


def _check_name(candidate: CustomField, others: list[CustomField], errors: Errors) -> None:
    name = candidate.name
    if _check_name_form(name, errors) and any(
        other.name.lower() == name.lower() for other in others
    ):
        errors.add("name", f"This client already has a custom field named {name!r}.", conflict=True)


def _check_rename(candidate: CustomField, errors: Errors) -> None:
    if candidate.pk is None:
        return
    stored = CustomField.objects.filter(pk=candidate.pk).first()
    if stored is None:
        return
    if stored.client_id != candidate.client_id:
        field_name, change = "client", "move to another client"
    elif stored.name.lower() != (candidate.name or "").lower():
        field_name, change = "name", "rename"
    else:
        return
    users = custom_field_users(stored)
    if users:
        errors.add(field_name, in_use_message(stored, users, change=change), conflict=True)


def _reference_problem(reference: str, known_custom: set[str]) -> str | None:
    if not reference:
        return "Choose a source: a standard field, extra.<key> or a custom field."
    key = extra_key(reference)
    if key is not None:
        return "NUL characters are not allowed." if "\x00" in key else None
    if reference.lower().startswith("extra.") or reference.lower() == "extra":
        return "Name the key after 'extra.', e.g. extra.newsletter."
    if find_standard(reference) or reference.lower() in known_custom:
        return None
    return (f"Unknown field {reference!r}: not a standard field, extra.<key>, or a custom "
            "field of this client.")  # fmt: skip


def _check_compiles(candidate: CustomField, others: list[CustomField], errors: Errors) -> None:
    field_at_fault = "template" if candidate.kind == "template" else "source"
    try:
        compiled = compile_columns(
            client=candidate.client,
            columns=[Column(candidate.name, candidate.name)],
            custom_fields=[*others, candidate],
        )
        compiled.render_row(tuple(None for _ in compiled.lookups))
    except CycleError as exc:
        # A cycle through other fields is theirs as much as this one's; through itself, not.
        own = candidate.name.lower()
        refers_to_itself = any(
            reference.lower() == own
            for _, reference in field_references(candidate, TRANSFORMS[candidate.kind])
        )
        errors.add(field_at_fault, str(exc), conflict=not refers_to_itself)
    except UnknownReference as exc:
        errors.add(field_at_fault, str(exc))
