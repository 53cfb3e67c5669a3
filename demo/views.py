"""The inbox's one endpoint: where the demo's real-time delivery sends."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from deliveries.channels import REALTIME_KINDS
from deliveries.models import Delivery
from demo.inbox import inbox_receive


@csrf_exempt  # a webhook receiver: the request is authenticated by its signature
@require_http_methods(["POST", "PUT"])
def inbox_post(request: HttpRequest, delivery_id: int) -> JsonResponse:
    if not settings.DEMO_INBOX:
        raise Http404("The demo inbox is off (DEMO_INBOX).")
    delivery = get_object_or_404(Delivery, pk=delivery_id, kind__in=REALTIME_KINDS)
    message = inbox_receive(
        delivery=delivery, method=request.method, headers=request.headers, body=request.body
    )
    if not message.signature_valid:
        return JsonResponse({"error": message.problem}, status=401)
    return JsonResponse({"received": message.webhook_id})
