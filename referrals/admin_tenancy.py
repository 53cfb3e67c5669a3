"""Admin building blocks that confine client users to their client on every admin page."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import SEARCH_VAR
from django.core.paginator import Paginator
from django.http import Http404
from django.utils.functional import cached_property

from referrals.models import Campaign, Client
from referrals.storable import StorableFormFields, storable, unstorable_path
from referrals.tenancy import is_client_user, scope_to_user, user_client


def id_from_param(value: object) -> int | None:
    """The primary key a filter parameter names, or ``None`` when it names none.

    Only ASCII digits count: ``str.isdigit`` also accepts characters such as superscript
    digits that ``int`` refuses (a 500). The value is a string from the query string, or the
    lookup's own value (an int) when the admin counts facets.
    """
    text = str(value)
    # At most 18 digits: a larger number is no primary key, and overflows SQLite's integers.
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


class TenantScopedAdmin(StorableFormFields, admin.ModelAdmin):
    """Rows, lookups and object pages narrowed to the user's client; read-only for client users.

    ``client_path`` names the lookup from the model to its client. An object outside the
    user's scope answers 404 on its change, history and delete pages, exactly as an id that
    does not exist (Django would otherwise redirect with a message, confirming nothing but
    still unlike a 404).
    """

    client_path = "client"

    def get_queryset(self, request):
        return scope_to_user(
            super().get_queryset(request), request.user, client_path=self.client_path
        )

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such object.")
        return obj

    def get_changelist_instance(self, request):
        # A filter parameter holding a NUL would reach the database (a 500): answered as any
        # bad filter is, with the admin's redirect to ``?e=1``. The search box checks its own.
        filters = [values for name, values in request.GET.lists() if name != SEARCH_VAR]
        if unstorable_path(filters) is not None:
            raise IncorrectLookupParameters("A filter holds text that cannot be stored.")
        return super().get_changelist_instance(request)

    def get_search_results(self, request, queryset, search_term):
        # The autocomplete's term is not checked by Django as the list's search box is.
        if not storable(search_term):
            return queryset.none(), False
        return super().get_search_results(request, queryset, search_term)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is Client:
            kwargs["queryset"] = scope_to_user(Client.objects.all(), request.user, client_path="pk")
        elif db_field.related_model is Campaign:
            kwargs["queryset"] = scope_to_user(
                Campaign.objects.all(), request.user, client_path="client"
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_add_permission(self, request, *args) -> bool:
        return not is_client_user(request.user) and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None) -> bool:
        return not is_client_user(request.user) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return not is_client_user(request.user) and super().has_delete_permission(request, obj)


class TenantScopedInline(StorableFormFields, admin.TabularInline):
    """An inline whose rows are the user's client's only, read-only for client users."""

    client_path = "client"

    def get_queryset(self, request):
        return scope_to_user(
            super().get_queryset(request), request.user, client_path=self.client_path
        )

    def has_add_permission(self, request, obj=None) -> bool:
        return not is_client_user(request.user) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return not is_client_user(request.user) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return not is_client_user(request.user) and super().has_delete_permission(request, obj)


class ClientListFilter(admin.SimpleListFilter):
    """Filter by client, offering only the clients the user may see (hidden for client users,
    who have one)."""

    title = "client"
    parameter_name = "client"

    def lookups(self, request, model_admin):
        if is_client_user(request.user):
            return []
        return list(Client.objects.values_list("pk", "name"))

    def has_output(self) -> bool:
        return bool(self.lookup_choices)

    def queryset(self, request, queryset):
        value = self.value()
        if value is None or value == "":
            return queryset
        pk = id_from_param(value)
        return queryset.none() if pk is None else queryset.filter(client_id=pk)


class CampaignListFilter(admin.SimpleListFilter):
    """Filter by campaign: the user's client's campaigns, or the chosen client's for staff."""

    title = "campaign"
    parameter_name = "campaign"

    def lookups(self, request, model_admin):
        campaigns = scope_to_user(Campaign.objects.all(), request.user, client_path="client")
        chosen_client = id_from_param(request.GET.get("client", ""))
        if user_client(request.user) is None:
            if chosen_client is None:
                return []  # staff pick a client first: no list of every campaign ever
            campaigns = campaigns.filter(client_id=chosen_client)
        return list(campaigns.values_list("pk", "name"))

    def queryset(self, request, queryset):
        value = self.value()
        if value is None or value == "":
            return queryset
        pk = id_from_param(value)
        return queryset.none() if pk is None else queryset.filter(campaign_id=pk)


class CappedCountPaginator(Paginator):
    """Counts at most ADMIN_COUNT_CAP + 1 rows, so a list over millions of referrals costs a
    bounded count instead of a full-table scan; the list then says "more than N"."""

    cap = property(lambda self: settings.ADMIN_COUNT_CAP)

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.cap + 1].count()

    @property
    def capped(self) -> bool:
        """True when there are more rows than were counted."""
        return self.count > self.cap
