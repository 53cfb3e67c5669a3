from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest

from metrics.access import metrics_refusal
from metrics.collector import DatabaseCollector
from metrics.ingest import process_registry
from metrics.per_delivery import per_delivery_exposition

_DATABASE = CollectorRegistry(auto_describe=False)
_DATABASE.register(DatabaseCollector())


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus' text format: the database's figures (per delivery, then across them), then
    this host's in-process ones."""
    refusal = metrics_refusal(request)
    if refusal == 404:  # off: the same page as any address that does not exist
        raise Http404
    if refusal is not None:
        # An empty body: a refusal tells nothing of what is behind it.
        response = HttpResponse(status=refusal, content_type="text/plain")
        if refusal == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    # The classic text format (0.0.4): every Prometheus reads it; the names need no escaping.
    now = timezone.now()
    since = now - dt.timedelta(seconds=settings.METRICS_WINDOW_SECONDS)
    body = (
        per_delivery_exposition(now, since).encode()
        + generate_latest(_DATABASE)
        + generate_latest(process_registry())
    )
    return HttpResponse(body, content_type=CONTENT_TYPE_PLAIN_0_0_4)
