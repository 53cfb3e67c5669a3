"""What uses a custom field by its name, so that renaming or deleting it is refused while
something would then fail at run time.

The client's other custom fields are found here; what the apps built on this one keep (a
delivery's column list or body template) is found by the "usage finders" they register from
their ``AppConfig.ready()``: this app never imports them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from customfields.models import CustomField
from customfields.transforms import TRANSFORMS
from customfields.transforms.template import Template

# A finder takes a stored custom field and describes each thing that names it, e.g.
# "the delivery 'Nightly' (column list)".
UsageFinder = Callable[[CustomField], list[str]]
_FINDERS: list[UsageFinder] = []


def usage_finder_register(finder: UsageFinder) -> None:
    if finder not in _FINDERS:
        _FINDERS.append(finder)


def custom_field_users(field: CustomField) -> list[str]:
    """Everything that names ``field`` (by its stored name), described for a person."""
    others = CustomField.objects.filter(client_id=field.client_id)
    dependents = sorted(custom_field_dependents(field, others=others), key=lambda f: f.name.lower())
    users = [f"the custom field {other.name!r}" for other in dependents]
    for finder in _FINDERS:
        users += finder(field)
    return users


def in_use_message(field: CustomField, users: list[str], *, change: str) -> str:
    """Why ``field`` cannot be renamed or deleted (``change``: "rename", "delete")."""
    them = "it" if len(users) == 1 else "them"
    return f"{field.name!r} is used by {', '.join(users)}: change {them} before you {change} it."


def custom_field_dependents(field: CustomField, *, others: Iterable[CustomField]) -> list:
    """The client's other custom fields that refer to ``field`` by its (stored) name: they
    would fail to render if it were renamed or deleted."""
    name = field.name.lower()
    dependents = []
    for other in others:
        transform = TRANSFORMS.get(other.kind)
        if other.pk == field.pk or transform is None:
            continue
        try:
            references = field_references(other, transform)
        except ValueError:  # a stored template that no longer parses refers to nothing
            continue
        if any(reference.lower() == name for _, reference in references):
            dependents.append(other)
    return dependents


def field_references(candidate: CustomField, transform) -> list[tuple[str, str]]:
    """(model field, name) of each field ``candidate`` reads."""
    found = []
    if transform.uses_source:
        found.append(("source", candidate.source))
    if transform is Template:
        found += [("template", name) for name in Template.references(candidate)]
    return found
