"""The access log: who viewed which client's referral data, when, from where, and how the
request was answered (docs/PRIVACY.md, "Access log"). ``access_record`` writes one row per
logged request, ``access_log_purge`` deletes rows past ``ACCESS_LOG_RETENTION_DAYS``."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from privacy.access_operations import Operation, Seen
from privacy.models import AccessLogEntry
from referrals.models import Client
from referrals.tenancy import is_client_user

Role = AccessLogEntry.Role


def access_record(
    request: HttpRequest, response: HttpResponse, *, operation: Operation, kwargs: dict[str, Any]
) -> AccessLogEntry | None:
    """Log ``request`` (whose URL is ``operation``'s) with one INSERT, if an authenticated
    user made it and it was answered (2xx) or refused (4xx, 5xx); a redirect showed nothing."""
    user = request.user
    status = response.status_code
    if not user.is_authenticated or 300 <= status < 400:
        return None
    seen = operation.shown(response) if status < 300 else operation.asked(kwargs)
    return AccessLogEntry.objects.create(
        at=timezone.now(),
        user=user,
        username=user.get_username(),
        role=_role(user),
        kind=operation.kind,
        operation=operation.name,
        path=request.path[:300],
        client_ids="".join(f" {pk} " for pk in sorted(seen.clients)),
        client_names=", ".join(_names(seen)),
        referral_id=seen.referral_id,
        rows=seen.rows,
        ip=_address(request.META.get("REMOTE_ADDR", "")),
        status=status,
    )


def access_log_purge(*, now: dt.datetime | None = None, batch_size: int = 5000) -> int:
    """Delete the rows older than ``ACCESS_LOG_RETENTION_DAYS`` (0: keep them all), at most
    ``batch_size`` per statement so that no statement holds many locks or runs long; returns
    how many were deleted. Each batch is found through the index on ``at``."""
    days = settings.ACCESS_LOG_RETENTION_DAYS
    if days == 0:
        return 0
    cutoff = (now or timezone.now()) - dt.timedelta(days=days)
    expired = AccessLogEntry.objects.filter(at__lt=cutoff).order_by("at")
    deleted = 0
    while True:
        ids = list(expired.values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        deleted += AccessLogEntry.objects.filter(pk__in=ids).delete()[0]
        if len(ids) < batch_size:
            return deleted


def _role(user) -> str:
    if user.is_superuser:
        return Role.SUPERUSER
    if is_client_user(user):
        return Role.CLIENT_USER
    return Role.STAFF if user.is_staff else Role.OTHER


def _names(seen: Seen) -> list[str]:
    """The clients' names, in id order; those the view had not loaded in one query."""
    missing = [pk for pk, name in seen.clients.items() if name is None]
    found = dict(Client.objects.filter(pk__in=missing).values_list("pk", "name")) if missing else {}
    return [seen.clients[pk] or found.get(pk, f"#{pk}") for pk in sorted(seen.clients)]


def _address(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:  # not an address (a Unix socket's peer, a test client's "testserver")
        return None
