"""The admin site: Django's, with an autocomplete endpoint that refuses what it cannot serve."""

from __future__ import annotations

from django.apps import apps
from django.contrib.admin import AdminSite
from django.contrib.admin.apps import AdminConfig
from django.contrib.admin.views.autocomplete import AutocompleteJsonView
from django.core.exceptions import FieldDoesNotExist, PermissionDenied


class _AutocompleteView(AutocompleteJsonView):
    def process_request(self, request):
        # Django answers a reverse relation (?field_name=campaigns) with a 500; refuse it, like
        # every other field that is not a forward relation.
        try:
            model = apps.get_model(request.GET["app_label"], request.GET["model_name"])
            field = model._meta.get_field(request.GET["field_name"])
        except (KeyError, LookupError, FieldDoesNotExist):
            raise PermissionDenied from None
        if not (field.is_relation and field.concrete):
            raise PermissionDenied
        return super().process_request(request)


class PlatformAdminSite(AdminSite):
    site_header = "Referral delivery platform"
    site_title = "Referral delivery platform"
    index_title = "Administration"
    # The home page lists every section; the left-hand list on every page took 300 px that
    # the lists need at 1366 px (their last columns went behind a sideways scroll).
    enable_nav_sidebar = False

    def autocomplete_view(self, request):
        return _AutocompleteView.as_view(admin_site=self)(request)

    def each_context(self, request):
        # Every admin page tells account managers which deliveries keep failing.
        from deliveries.selectors import deliveries_failing_for
        from referrals.tenancy import is_account_manager

        context = super().each_context(request)
        if is_account_manager(request.user):
            context["failing_deliveries"] = deliveries_failing_for(request.user)
        return context

    def index(self, request, extra_context=None):
        # The home page: a client user's own data, or every client's health for staff.
        from referrals.dashboard import dashboard_context

        return super().index(request, {**dashboard_context(request.user), **(extra_context or {})})


class PlatformAdminConfig(AdminConfig):
    default_site = "rokt_platform.admin_site.PlatformAdminSite"
