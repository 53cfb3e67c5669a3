"""Writes the access log (privacy.access_log) for the requests ``OPERATIONS`` names."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from privacy.access_log import access_record
from privacy.access_operations import OPERATIONS

logger = logging.getLogger(__name__)


class AccessLogMiddleware:
    """After the view: one row for a request that showed referral data or was refused it.

    Any other request (ingestion's POST included) costs a dict lookup. A failure to write the
    row is logged and the answer still goes out: the log records views, it does not gate
    them (a gate would turn a broken log table into a broken admin)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        operation = OPERATIONS.get(match.view_name) if match is not None else None
        if operation is None or request.method not in operation.methods:
            return response
        try:
            access_record(request, response, operation=operation, kwargs=match.kwargs)
        except Exception:  # see the docstring: logged, never raised
            logger.exception("Access log: %s %s was not recorded.", request.method, request.path)
        return response
