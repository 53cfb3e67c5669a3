"""Which deliveries name a custom field: registered with customfields (which cannot import
this app) so that renaming or deleting a field in use is refused, naming them."""

from __future__ import annotations

from deliveries.models import Delivery
from deliveries.payloads import PayloadError, template_placeholders


def deliveries_using(field) -> list[str]:
    """Each delivery of ``field``'s client whose column list (which is also an export column
    set) or body template names it, described for a person."""
    name = field.name.lower()
    users = []
    deliveries = Delivery.objects.filter(client_id=field.client_id).order_by("name")
    for delivery in deliveries.only("name", "columns", "body_template"):
        places = []
        if name in _column_sources(delivery.columns):
            places.append("column list")
        if name in _placeholders(delivery.body_template):
            places.append("body template")
        if places:
            users.append(f"the delivery {delivery.name!r} ({' and '.join(places)})")
    return users


def _column_sources(columns) -> set[str]:
    if not isinstance(columns, list):
        return set()
    return {str(c.get("source", "")).lower() for c in columns if isinstance(c, dict)}


def _placeholders(template: str) -> set[str]:
    try:
        return {placeholder.lower() for placeholder in template_placeholders(template)}
    except PayloadError:  # a template that no longer parses names nothing
        return set()
