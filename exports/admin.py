"""What the exports add to the "Customer Data" admin section: the referral list's Export button
and pages (``exports.admin_page``), and the export audit (its models are referrals', so its
pages keep their URLs and permissions)."""

from __future__ import annotations

from django.contrib import admin

from exports.admin_page import ReferralExportMixin
from exports.services import ExportRequest, utc_text
from referrals.admin import ReferralAdmin
from referrals.admin_tenancy import ClientListFilter, TenantScopedAdmin
from referrals.models import ExportAudit, ExportDownload, Referral

admin.site.unregister(Referral)


@admin.register(Referral)
class ReferralWithExportAdmin(ReferralExportMixin, ReferralAdmin):
    """Referrals, with import-export's Export button, URL and page on the list."""


class ExportDownloadInline(admin.TabularInline):
    model = ExportDownload
    fields = ("user", "downloaded")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "downloads"

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="when (UTC)")
    def downloaded(self, obj: ExportDownload) -> str:
        return utc_text(obj.downloaded_at)


@admin.register(ExportAudit)
class ExportAuditAdmin(TenantScopedAdmin):
    """Who exported what, and who downloaded it when: for account managers (client users
    hold no permission on it). Every time in UTC, saying so (``utc_text``)."""

    list_display = ("started", "user", "client", "format", "rows", "completed", "downloads",
                    "last_download", "what")  # fmt: skip
    list_filter = (ClientListFilter, "format")
    list_select_related = ("user", "client")
    date_hierarchy = "started_at"
    fields = ("user", "client", "format", "what", "status", "rows", "total_rows", "started",
              "completed", "expires", "file_name", "error", "downloads")  # fmt: skip
    readonly_fields = ("started", "completed", "expires", "what")
    inlines = [ExportDownloadInline]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="started (UTC)", ordering="started_at")
    def started(self, obj: ExportAudit) -> str:
        return utc_text(obj.started_at)

    @admin.display(description="completed (UTC)", ordering="completed_at")
    def completed(self, obj: ExportAudit) -> str:
        return utc_text(obj.completed_at)

    @admin.display(description="file expires (UTC)")
    def expires(self, obj: ExportAudit) -> str:
        return utc_text(obj.expires_at)

    @admin.display(description="what")
    def what(self, obj: ExportAudit) -> str:
        return ExportRequest.from_audit(obj).describe()

    @admin.display(description="last download (UTC)", ordering="last_downloaded_at")
    def last_download(self, obj: ExportAudit) -> str:
        return utc_text(obj.last_downloaded_at)
