"""The referral list's "Erase these people's data" action: a confirmation page that says what
will be removed for each person, then one erasure (and receipt) per person."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from privacy.erasure import Person, erasure_preview, erasure_run
from privacy.models import ErasureReceipt

# People one confirmation covers at most: each is looked up (and then erased) on its own.
MAX_PEOPLE = 50
SCOPES = {
    "all": "Every client's referrals with the same email",
    "own": "The chosen referral's own client only",
}


_COUNTED = ("referrals", "ledger_items", "attempts", "batch_entries", "export_files")


def erasure_action(modeladmin, request: HttpRequest, queryset: QuerySet):
    """The confirmation page; with ``confirm`` posted, the erasures (then back to the list)."""
    scope = request.POST.get("scope", "all")
    if scope not in SCOPES:
        scope = "all"
    referrals = list(queryset.select_related("client").order_by("pk")[: MAX_PEOPLE + 1])
    people = list(dict.fromkeys(Person.of_referral(r, all_clients=scope == "all")
                                for r in referrals))  # fmt: skip
    if len(people) > MAX_PEOPLE:
        modeladmin.message_user(
            request, f"Choose at most {MAX_PEOPLE} people at a time.", messages.ERROR
        )
        return None
    if request.POST.get("confirm") == "yes":
        receipts = [erasure_run(person, user=request.user, source=ErasureReceipt.Source.ADMIN)
                    for person in people]  # fmt: skip
        erased = sum(receipt.referrals for receipt in receipts)
        numbers = ", ".join(f"#{receipt.pk}" for receipt in receipts)
        modeladmin.message_user(
            request,
            f"Erased {len(people)} {'person' if len(people) == 1 else 'people'}: {erased} "
            f"referrals and every copy of them (receipts {numbers}).",
            messages.SUCCESS,
        )
        return None
    rows = [(_describe(person), erasure_preview(person)) for person in people]
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Erase these people's data?",
        "opts": modeladmin.model._meta,
        "rows": rows,
        "scope": scope,
        "scopes": SCOPES,
        "selected": [referral.pk for referral in referrals],
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "totals": {field: sum(getattr(p, field) for _, p in rows) for field in _COUNTED},
    }
    return TemplateResponse(request, "admin/privacy/erase_confirmation.html", context)


def _describe(person: Person) -> str:
    """The person as the page names them (staff chose them from the list: no secret here)."""
    where = f"in {person.client.name}" if person.client is not None else "in every client"
    if person.kind == ErasureReceipt.Kind.EMAIL:
        return f"{person.value} ({where})"
    return f"external id {person.value} ({where})"
