"""The inbox in the admin: what the demo's real-time delivery sent, for account managers.

Shown only while ``DEMO_INBOX`` is on; the bodies hold referrals' personal data, so client
users never see it (they see their deliveries' attempts instead)."""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib import admin
from django.utils.html import format_html

from demo.models import InboxMessage
from referrals.tenancy import is_account_manager


@admin.register(InboxMessage)
class InboxMessageAdmin(admin.ModelAdmin):
    list_display = ("received_at", "webhook_id", "signature", "answered", "preview")
    list_filter = ("signature_valid", ("delivery", admin.RelatedOnlyFieldListFilter))
    fields = ("received_at", "delivery", "method", "webhook_id", "signature", "problem",
              "answered", "shown_headers", "shown_body")  # fmt: skip
    readonly_fields = fields

    def has_module_permission(self, request) -> bool:
        return settings.DEMO_INBOX and is_account_manager(request.user)

    def has_view_permission(self, request, obj=None) -> bool:
        return self.has_module_permission(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="signature", boolean=True, ordering="signature_valid")
    def signature(self, message: InboxMessage) -> bool:
        return message.signature_valid

    @admin.display(description="body")
    def preview(self, message: InboxMessage) -> str:
        return message.body[:60] + ("…" if len(message.body) > 60 else "")

    @admin.display(description="headers")
    def shown_headers(self, message: InboxMessage) -> str:
        return format_html("<pre>{}</pre>", json.dumps(message.headers, indent=2))

    @admin.display(description="body")
    def shown_body(self, message: InboxMessage) -> str:
        try:
            text = json.dumps(json.loads(message.body), indent=2, ensure_ascii=False)
        except ValueError:
            text = message.body
        return format_html("<pre>{}</pre>", text)
