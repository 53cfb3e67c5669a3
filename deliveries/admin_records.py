"""What deliveries did, in the admin: file batches (resend), real-time attempts (what was
sent and what came back, secrets redacted) and worker heartbeats. Read-only records, scoped
to the user's client like the deliveries themselves."""

from __future__ import annotations

from django.contrib import admin

from deliveries.file_runs import batch_resend
from deliveries.models import Attempt, Batch, WorkerHeartbeat
from deliveries.services import delivery_send_now
from referrals.admin_tenancy import TenantScopedAdmin
from referrals.tenancy import is_client_user


class BatchAdmin(TenantScopedAdmin):
    client_path = "delivery__client"
    list_display = (
        "number", "delivery", "kind", "status", "rows", "size", "file_names", "started_at",
        "duration", "throughput", "attempts", "error_excerpt",
    )  # fmt: skip
    list_filter = ("status", "kind", ("delivery__client", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("delivery", "delivery__client")
    search_fields = ("delivery__name",)
    actions = ("resend",)
    readonly_fields = (
        "delivery", "number", "kind", "status", "run_at", "range_start", "range_end", "rows",
        "files", "bytes", "sha256", "attempts", "next_attempt_at", "started_at", "finished_at",
        "duration", "throughput", "error", "requested_by",
    )  # fmt: skip
    exclude = ("created_at",)

    def get_list_filter(self, request):
        if is_client_user(request.user):
            return ("status", "kind")
        return self.list_filter

    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # a batch is the record of what was sent

    @admin.display(description="Size")
    def size(self, obj: Batch) -> str:
        return "-" if obj.bytes is None else _bytes(obj.bytes)

    @admin.display(description="Files")
    def file_names(self, obj: Batch) -> str:
        return ", ".join(f["name"] for f in obj.files) or "-"

    @admin.display(description="Duration")
    def duration(self, obj: Batch) -> str:
        seconds = obj.duration_seconds
        return "-" if seconds is None else f"{seconds:.1f} s"

    @admin.display(description="Throughput")
    def throughput(self, obj: Batch) -> str:
        rate = obj.throughput_bytes_per_second
        return "-" if rate is None else f"{_bytes(rate)}/s"

    @admin.display(description="Error")
    def error_excerpt(self, obj: Batch) -> str:
        return obj.error[:120]

    @admin.action(description="Resend (the same referrals, under the same names)",
                  permissions=["change"])  # fmt: skip
    def resend(self, request, queryset):
        deliveries = set()
        for batch in queryset.select_related("delivery"):
            batch_resend(batch, requested_by=request.user.get_username())
            deliveries.add(batch.delivery)
        for delivery in deliveries:
            if delivery.active and not delivery.paused:
                delivery_send_now(delivery)
        self.message_user(request, f"{queryset.count()} batch(es) will be resent.")


class AttemptAdmin(TenantScopedAdmin):
    """Every HTTP attempt: what was sent (secrets redacted) and what came back."""

    client_path = "delivery__client"
    list_display = ("started_at", "delivery", "referral_id", "number", "method", "status_code",
                    "error_class", "latency_ms", "outcome", "test")  # fmt: skip
    list_filter = ("outcome", "error_class", "test")
    list_select_related = ("delivery",)
    search_fields = ("=referral_id",)
    readonly_fields = (
        "delivery", "item", "referral_id", "number", "test", "started_at", "method", "url",
        "request_headers", "request_body", "status_code", "response_headers", "response_body",
        "latency_ms", "error_class", "outcome", "reason",
    )  # fmt: skip

    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the log of what happened

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def _bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"  # pragma: no cover


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ("hostname", "beat_at")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


admin.site.register(Batch, BatchAdmin)
admin.site.register(Attempt, AttemptAdmin)
