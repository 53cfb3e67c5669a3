"""The "Customer Data" admin section: clients, campaigns, referrals."""

from __future__ import annotations

from axes.utils import reset as axes_reset
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import ValidationError
from django.db.models import Count, Exists, OuterRef, Q
from django.forms.models import BaseInlineFormSet
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from rangefilter.filters import DateRangeFilterBuilder

from referrals.admin_tenancy import (
    CampaignListFilter,
    CappedCountPaginator,
    ClientListFilter,
    TenantScopedAdmin,
    TenantScopedInline,
    id_from_param,
)
from referrals.models import (
    Campaign,
    Client,
    ClientMembership,
    Referral,
)
from referrals.roles import role_sync
from referrals.selectors import SEARCH_FIELDS
from referrals.tenancy import is_client_user
from referrals.two_factor.services import devices_reset


class CampaignInline(TenantScopedInline):
    model = Campaign
    fields = ("name", "external_id")
    extra = 0
    show_change_link = True


@admin.register(Client)
class ClientAdmin(TenantScopedAdmin):
    """The apps built on this one add to it (customfields: its inline)."""

    client_path = "pk"
    # Explicit: the campaign count (GROUP BY) drops Meta.ordering, and autocomplete pages
    # through this queryset.
    ordering = ("name", "pk")
    list_display = ("name", "slug", "time_zone", "active", "require_two_factor", "campaign_count")
    list_filter = ("active", "require_two_factor")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [CampaignInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_campaign_count=Count("campaigns"))

    @admin.display(description="campaigns", ordering="_campaign_count")
    def campaign_count(self, obj: Client) -> int:
        return obj._campaign_count


@admin.register(Campaign)
class CampaignAdmin(TenantScopedAdmin):
    list_display = ("name", "external_id", "client", "created_at")
    list_filter = (ClientListFilter,)
    list_select_related = ("client",)
    search_fields = ("name", "external_id")
    autocomplete_fields = ("client",)

    def get_readonly_fields(self, request, obj=None):
        # A campaign never moves between clients: its referrals would follow it.
        return ("client",) if obj is not None else ()


@admin.register(Referral)
class ReferralAdmin(TenantScopedAdmin):
    """Read-only; fast at millions of rows: one query for the page (no query per row), a
    capped count, and case-insensitive exact search on indexed columns. The exports app
    registers it again with its Export button and pages."""

    list_display = (
        "external_id", "email", "full_name", "campaign", "client", "opted_in_local",
        "created_local",
    )  # fmt: skip
    list_select_related = ("client", "campaign")
    list_filter = (
        ClientListFilter,
        CampaignListFilter,
        ("created_at", DateRangeFilterBuilder(title="stored")),
        ("opted_in_at", DateRangeFilterBuilder(title="opted in")),
    )
    # "=" is a case-insensitive exact match, served by the functional indexes on the model.
    search_fields = tuple(f"={name}" for name in SEARCH_FIELDS)  # as exports search
    search_help_text = "Exact external id, email, first or last name (any case)."
    paginator = CappedCountPaginator
    show_full_result_count = False
    list_per_page = 100
    fieldsets = (
        (None, {"fields": ("external_id", "client", "campaign", "opted_in_at", "created_at")}),
        ("Person", {"fields": (
            "email", "title", "first_name", "last_name", "gender", "birth_date", "age", "mobile",
            "address1", "address2", "city", "state", "zip_code", "country", "language",
        )}),
        ("Device", {"fields": (
            "ip_address", "user_agent", "browser", "browser_version", "os", "device",
        )}),
        ("Offer", {"fields": (
            "ad_text", "ad_response", "audience_id", "audience_name", "bid_price", "currency",
            "confirmation_ref",
        )}),
        ("Further attributes", {"fields": ("extra",)}),
    )  # fmt: skip

    def has_add_permission(self, request) -> bool:
        return False  # referrals arrive through the ingestion API only

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # immutable once stored

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Referral._meta.fields]

    def get_list_display(self, request):
        if is_client_user(request.user):  # always their own client: a column they need not read
            return tuple(name for name in self.list_display if name != "client")
        return self.list_display

    def changelist_view(self, request, extra_context=None):
        # Staff looking at one client read and type dates in that client's time zone.
        chosen = id_from_param(request.GET.get("client", ""))
        if not is_client_user(request.user) and chosen is not None:
            client = Client.objects.filter(pk=chosen).first()
            if client is not None:
                with timezone.override(client.zone):
                    return super().changelist_view(request, extra_context)
        return super().changelist_view(request, extra_context)

    @admin.display(description="name")
    def full_name(self, obj: Referral) -> str:
        return f"{obj.first_name} {obj.last_name}".strip()

    # Short headers (they never wrap): each cell names the client's zone ("... GMT").
    @admin.display(description="opted in", ordering="opted_in_at")
    def opted_in_local(self, obj: Referral) -> str:
        return _in_client_zone(obj, obj.opted_in_at)

    @admin.display(description="stored", ordering="created_at")
    def created_local(self, obj: Referral) -> str:
        return _in_client_zone(obj, obj.created_at)


def _in_client_zone(obj: Referral, moment) -> str:
    local = moment.astimezone(obj.client.zone)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


class _MembershipFormSet(BaseInlineFormSet):
    require_membership = False

    def clean(self) -> None:
        super().clean()
        if not self.require_membership:
            return
        kept = [f for f in self.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")]
        if not kept:
            raise ValidationError(
                "Choose the client this user belongs to: account managers create and manage "
                "client users; a superuser makes staff."
            )


class ClientMembershipInline(admin.StackedInline):
    model = ClientMembership
    formset = _MembershipFormSet
    can_delete = True
    autocomplete_fields = ("client",)
    verbose_name = "client membership"
    verbose_name_plural = "client membership (leave empty for staff: account managers)"

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        # Users an account manager manages are client users; their own record stays staff.
        formset.require_membership = not request.user.is_superuser and (
            obj is None or obj.pk != request.user.pk
        )
        return formset


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class PlatformUserAdmin(UserAdmin):
    """Users with their client membership. Only superusers grant superuser status or raw
    permissions, so an account manager who manages users cannot raise their own rights."""

    inlines = [ClientMembershipInline]
    actions = ["two_factor_reset", "login_unlock"]
    list_display = ("username", "email", "is_staff", "is_superuser", "client_of_user",
                    "two_factor")  # fmt: skip
    list_select_related = ("client_membership__client",)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields += ["is_superuser", "user_permissions", "groups"]
        return fields

    def get_queryset(self, request):
        # An account manager manages client users and themselves; other staff (and any
        # superuser) are a superuser's to manage, so no one resets a colleague's password.
        queryset = (
            super()
            .get_queryset(request)
            .annotate(
                _two_factor=Exists(
                    TOTPDevice.objects.filter(user_id=OuterRef("pk"), confirmed=True)
                )
            )
        )
        if not request.user.is_superuser:
            queryset = queryset.filter(is_superuser=False).filter(
                Q(client_membership__isnull=False) | Q(pk=request.user.pk)
            )
        return queryset

    @admin.display(description="two-factor", boolean=True, ordering="_two_factor")
    def two_factor(self, obj) -> bool:
        return obj._two_factor

    @admin.display(description="client")
    def client_of_user(self, obj) -> str:
        membership = getattr(obj, "client_membership", None)
        return membership.client.name if membership else "— staff —"

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        role_sync(form.instance)

    # Both actions act on get_queryset's users only, and leave a line in the admin's history
    # (LogEntry) of each user: who did it, when.
    @admin.action(description="Reset two-factor login (lost phone)", permissions=["change"])
    def two_factor_reset(self, request, queryset) -> None:
        for user in queryset:
            if devices_reset(user):
                self.log_change(request, user, "Reset two-factor login.")
        self.message_user(
            request,
            "Two-factor login reset: where it is required, the user sets up an app again at "
            "their next login.",
            messages.SUCCESS,
        )

    @admin.action(description="Unlock login (after too many failed attempts)",
                  permissions=["change"])  # fmt: skip
    def login_unlock(self, request, queryset) -> None:
        for user in queryset:
            if axes_reset(username=user.get_username()):
                self.log_change(request, user, "Unlocked login after failed attempts.")
        self.message_user(request, "Unlocked: the users can log in again.", messages.SUCCESS)
