from django.conf import settings
from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from rokt_platform.health import healthz

_docs_page = SpectacularSwaggerView.as_view(url_name="schema")
if not settings.API_DOCS_PUBLIC:  # a browser without a session goes to the login page first
    _docs_page = login_required(_docs_page)

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    # The login's second step and the user's own two-factor page (referrals.two_factor).
    path("admin/two-factor/", include("referrals.two_factor.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("referrals.api.urls")),
    path("api/v1/", include("customfields.api.urls")),
    path("api/v1/", include("deliveries.api.urls")),
    path("api/v1/", include("privacy.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", _docs_page, name="api-docs"),
    path("healthz", healthz, name="healthz"),
    # Prometheus' text format; 404 unless METRICS_TOKEN or METRICS_ALLOWED_NETWORKS is set.
    path("", include("metrics.urls")),
    # Browsers ask for it whatever the page says; answered rather than a 404 in every log.
    path("favicon.ico", RedirectView.as_view(url=static("rokt/favicon.svg"), permanent=True)),
    # Answers 404 unless DEMO_INBOX is on (scripts/run-demo).
    path("", include("demo.urls")),
]

handler404 = "rokt_platform.api_errors.not_found"
