"""Erasure in the admin: the referral list's erasure action (account managers only) and the
erasure receipts (read-only)."""

from __future__ import annotations

from django.contrib import admin

from exports.admin import ReferralWithExportAdmin
from privacy.admin_erasure import erasure_action
from privacy.models import ErasureReceipt
from referrals.models import Referral
from referrals.tenancy import is_account_manager

admin.site.unregister(Referral)


@admin.register(Referral)
class ReferralWithErasureAdmin(ReferralWithExportAdmin):
    """Referrals, with the export's pages and, for account managers, erasure."""

    actions = ["erase_people"]

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not is_account_manager(request.user):
            actions.pop("erase_people", None)
        return actions

    @admin.action(description="Erase these people's data")
    def erase_people(self, request, queryset):
        return erasure_action(self, request, queryset)


@admin.register(ErasureReceipt)
class ErasureReceiptAdmin(admin.ModelAdmin):
    """Who asked to erase whom (as a keyed hash), when, and what went. Account managers only:
    client users hold no permission on it."""

    list_display = ("id", "created_at", "identifier_kind", "client", "requested_by", "source",
                    "referrals", "ledger_items", "attempts", "batch_entries", "export_files",
                    "sent_batches", "delivered_items")  # fmt: skip
    list_filter = ("identifier_kind", "source")
    list_select_related = ("client", "requested_by")
    search_fields = ("=identifier_hash",)
    search_help_text = "The identifier's keyed hash (as the API's receipt gives it)."
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in ErasureReceipt._meta.fields]

    def has_module_permission(self, request) -> bool:
        return is_account_manager(request.user) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return is_account_manager(request.user) and super().has_view_permission(request, obj)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
