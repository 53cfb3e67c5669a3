"""Who may read /metrics: a bearer token (``METRICS_TOKEN``), a list of networks
(``METRICS_ALLOWED_NETWORKS``), or both (then both must pass). With neither set the page is
off and answers 404, as for any unknown address: an operator turns it on knowingly.

A login session counts for nothing here: the figures span every client, and no user role is
meant to see them in a browser.
"""

from __future__ import annotations

import hmac
import ipaddress
from functools import cache

from django.conf import settings
from django.http import HttpRequest


def metrics_refusal(request: HttpRequest) -> int | None:
    """The status that refuses ``request`` (404 off, 403, 401), or ``None`` to serve it."""
    token = settings.METRICS_TOKEN
    networks = _networks(tuple(settings.METRICS_ALLOWED_NETWORKS))
    if not token and not networks:
        return 404
    if networks and not _from(request, networks):
        return 403
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            return 401
        # Constant time: how much of a guess matched is not told by how long the answer took.
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            return 403
    return None


def _from(request: HttpRequest, networks: tuple) -> bool:
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped:  # ::ffff:10.0.0.5 is 10.0.0.5
        address = address.ipv4_mapped
    return any(address in network for network in networks)


@cache
def _networks(names: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(name, strict=False) for name in names)
