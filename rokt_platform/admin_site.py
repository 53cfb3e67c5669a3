"""The admin site: Django's, with an autocomplete endpoint that refuses what it cannot serve,
and what the apps add to its pages.

The apps register what they add from their ``AppConfig.ready()`` (the home page's dashboard,
the failing deliveries' banner, the login's second step): this module imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.apps import apps
from django.contrib.admin import AdminSite
from django.contrib.admin.apps import AdminConfig
from django.contrib.admin.views.autocomplete import AutocompleteJsonView
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse

# Each takes the request and gives template variables.
PageContext = Callable[[HttpRequest], dict[str, Any]]
_EVERY_PAGE: list[PageContext] = []
_HOME_PAGE: list[PageContext] = []
# The login page's view class (a LoginView); referrals.two_factor adds the second step.
_LOGIN_VIEW: list[type] = []


def admin_page_context_register(context: PageContext) -> None:
    """``context`` adds to every admin page."""
    if context not in _EVERY_PAGE:
        _EVERY_PAGE.append(context)


def admin_home_context_register(context: PageContext) -> None:
    """``context`` adds to the admin's home page."""
    if context not in _HOME_PAGE:
        _HOME_PAGE.append(context)


def admin_login_view_register(view_class: type) -> None:
    """``view_class`` (a ``LoginView``) serves the admin's login page."""
    _LOGIN_VIEW[:] = [view_class]


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

    def login(self, request, extra_context=None):
        if not _LOGIN_VIEW:
            return super().login(request, extra_context)
        # Django's own login(), with the registered view class in place of LoginView.
        from django.contrib.admin.forms import AdminAuthenticationForm

        if request.method == "GET" and self.has_permission(request):
            return HttpResponseRedirect(reverse("admin:index", current_app=self.name))
        context = {
            **self.each_context(request),
            "title": "Log in",
            "subtitle": None,
            "app_path": request.get_full_path(),
            "username": request.user.get_username(),
        }
        if REDIRECT_FIELD_NAME not in request.GET and REDIRECT_FIELD_NAME not in request.POST:
            context[REDIRECT_FIELD_NAME] = reverse("admin:index", current_app=self.name)
        context.update(extra_context or {})
        request.current_app = self.name
        return _LOGIN_VIEW[0].as_view(
            extra_context=context,
            authentication_form=self.login_form or AdminAuthenticationForm,
            template_name=self.login_template or "admin/login.html",
        )(request)

    def each_context(self, request):
        context = super().each_context(request)
        for added in _EVERY_PAGE:
            context.update(added(request))
        return context

    def index(self, request, extra_context=None):
        context: dict[str, Any] = {}
        for added in _HOME_PAGE:
            context.update(added(request))
        return super().index(request, {**context, **(extra_context or {})})


class PlatformAdminConfig(AdminConfig):
    default_site = "rokt_platform.admin_site.PlatformAdminSite"
