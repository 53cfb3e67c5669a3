from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from referrals.tenancy import user_client


class ClientTimezoneMiddleware:
    """Shows a client user every timestamp, and reads every date they type, in their client's
    time zone. Staff stay in UTC unless a page picks a client's zone itself."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        client = user_client(request.user)
        if client is None:
            return self.get_response(request)
        with timezone.override(client.zone):
            return self.get_response(request)
