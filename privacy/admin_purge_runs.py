"""**Privacy > Purge runs**: what each retention purge removed, for account managers."""

from __future__ import annotations

from django.contrib import admin

from privacy.models import PurgeRun
from referrals.tenancy import is_client_user


@admin.register(PurgeRun)
class PurgeRunAdmin(admin.ModelAdmin):
    list_display = ("started_at", "status", "total", "finished_at")
    list_filter = ("status",)
    fields = ("started_at", "finished_at", "status", "what_was_removed", "notes", "error")
    readonly_fields = fields

    def has_module_permission(self, request) -> bool:
        return not is_client_user(request.user) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return not is_client_user(request.user) and super().has_view_permission(request, obj)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="rows removed or anonymised")
    def total(self, obj: PurgeRun) -> int:
        return obj.total

    @admin.display(description="removed")
    def what_was_removed(self, obj: PurgeRun) -> str:
        """Words, not JSON: "ledger items: 1,200; attempts: 3,400"."""
        parts = [f"{name.replace('_', ' ')}: {count:,}" for name, count in obj.removed.items()]
        return "; ".join(parts) or "nothing yet"
