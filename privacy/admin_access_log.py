"""Privacy > Referral access log: for superusers only, read-only."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from rangefilter.filters import DateRangeFilterBuilder

from exports.services import utc_text
from privacy.models import AccessLogEntry
from referrals.admin_tenancy import CappedCountPaginator, ClientListFilter, id_from_param


def superuser(request) -> bool:
    return bool(request.user.is_active and request.user.is_superuser)


class UserFilter(admin.SimpleListFilter):
    """One user's rows: chosen by clicking a name in the list (a menu of every user would
    be as long as the user table); shown here so that it can be cleared."""

    title = "user"
    parameter_name = "user"

    def lookups(self, request, model_admin):
        pk = id_from_param(request.GET.get(self.parameter_name, ""))
        if pk is None:
            return []
        row = AccessLogEntry.objects.filter(user_id=pk).values_list("username").first()
        return [(str(pk), row[0] if row else f"#{pk}")]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        pk = id_from_param(self.value())
        return queryset.none() if pk is None else queryset.filter(user_id=pk)


class LoggedClientFilter(ClientListFilter):
    """Rows that showed this client's data (a list may show several clients')."""

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        pk = id_from_param(self.value())
        return queryset.none() if pk is None else queryset.filter(client_ids__contains=f" {pk} ")


class OutcomeFilter(admin.SimpleListFilter):
    title = "answer"
    parameter_name = "answer"

    def lookups(self, request, model_admin):
        return [("shown", "shown (2xx)"), ("refused", "refused or failed (4xx, 5xx)")]

    def queryset(self, request, queryset):
        if self.value() == "shown":
            return queryset.filter(status__lt=400)
        if self.value() == "refused":
            return queryset.filter(status__gte=400)
        return queryset


@admin.register(AccessLogEntry)
class AccessLogAdmin(admin.ModelAdmin):
    """Who viewed which client's referral data. Superusers only: account managers are among
    those it watches; client users never see it. Nothing here adds, changes or deletes."""

    list_display = ("when", "user_link", "role", "kind", "operation", "client_names",
                    "referral_id", "rows", "ip", "answer")  # fmt: skip
    list_filter = (
        UserFilter,
        LoggedClientFilter,
        ("at", DateRangeFilterBuilder(title="when (UTC)")),
        "kind",
        "role",
        OutcomeFilter,
    )
    search_fields = ("username", "client_names", "operation", "path")
    search_help_text = (
        "A referral's id (a number), or part of a username, client name, page or operation, "
        "or path."
    )
    fields = ("when", "user", "username", "role", "kind", "operation", "path", "client_names",
              "client_ids", "referral_id", "rows", "ip", "status")  # fmt: skip
    readonly_fields = fields
    paginator = CappedCountPaginator
    show_full_result_count = False
    list_per_page = 100
    # Counting every filter's choices scans the log once per client: not on a whim.
    show_facets = admin.ShowFacets.NEVER
    actions = None

    def has_module_permission(self, request) -> bool:
        return superuser(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return superuser(request)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_search_results(self, request, queryset, search_term):
        # A number is a referral's id ("who saw this one?"); as text it would match every
        # path ("/api/v1/...").
        pk = id_from_param(search_term.strip())
        if pk is not None:
            return queryset.filter(referral_id=pk), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description="when (UTC)", ordering="at")
    def when(self, obj: AccessLogEntry) -> str:
        return utc_text(obj.at)

    @admin.display(description="user", ordering="username")
    def user_link(self, obj: AccessLogEntry) -> str:
        if obj.user_id is None:
            return f"{obj.username} (deleted)"
        url = reverse("admin:privacy_accesslogentry_changelist")
        return format_html(
            '<a href="{}?{}" title="Only this user\'s rows">{}</a>',
            url, urlencode({"user": obj.user_id}), obj.username,
        )  # fmt: skip

    @admin.display(description="answer", ordering="status")
    def answer(self, obj: AccessLogEntry) -> str:
        return f"{obj.status} refused" if obj.refused else str(obj.status)
