"""The API's pages, with their parameters read strictly and documented with their ranges.

DRF falls back to the default for a page size or offset it cannot read (``?offset=null`` is
the first page) and lets a huge ``limit`` through to the database (an OverflowError, a
500): here each is refused with a 400 naming it (referrals/api/query.py).
"""

from __future__ import annotations

import binascii
import re
from base64 import b64decode

from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination, LimitOffsetPagination

from referrals.api.query import INT32_MAX, integer_parameter, query_integer, query_value

MAX_PAGE_SIZE = 1000
# DRF writes a cursor as standard base64; b64decode would skip any other character.
_CURSOR = re.compile(r"[A-Za-z0-9+/]+={0,2}")


class LimitOffsetPages(LimitOffsetPagination):
    """``?limit=`` (1-1000, 50 by default) and ``?offset=`` (0-2147483647)."""

    default_limit = 50
    max_limit = MAX_PAGE_SIZE

    def get_limit(self, request) -> int:
        limit = query_integer(request, self.limit_query_param, 1, self.max_limit)
        return self.default_limit if limit is None else limit

    def get_offset(self, request) -> int:
        offset = query_integer(request, self.offset_query_param, 0, INT32_MAX)
        return offset or 0

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return [
            integer_parameter(
                self.limit_query_param, 1, self.max_limit, "How many results per page.",
                default=self.default_limit,
            ),
            integer_parameter(
                self.offset_query_param, 0, INT32_MAX, "How many results to skip.", default=0
            ),
        ]  # fmt: skip


class ReferralCursorPagination(CursorPagination):
    """Newest first; ``?page_size=`` (1-1000, 100 by default); ``?cursor=`` from a page's
    ``next`` or ``previous`` link (any other cursor answers 404)."""

    ordering = ("-created_at", "-id")
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def get_page_size(self, request) -> int:
        size = query_integer(request, self.page_size_query_param, 1, self.max_page_size)
        return self.page_size if size is None else size

    def decode_cursor(self, request):
        encoded = query_value(request, self.cursor_query_param)
        if encoded is None:
            return None
        if not _CURSOR.fullmatch(encoded):
            raise NotFound(self.invalid_cursor_message)
        try:
            b64decode(encoded, validate=True)
        except binascii.Error:
            raise NotFound(self.invalid_cursor_message) from None
        cursor = super().decode_cursor(request)
        # The position is compared with created_at: a forged one would be a database error.
        if cursor.position is not None and not _is_aware_datetime(cursor.position):
            raise NotFound(self.invalid_cursor_message)
        return cursor

    def get_schema_operation_parameters(self, view) -> list[dict]:
        cursor = {
            "name": self.cursor_query_param, "required": False, "in": "query",
            "description": "The page to show: the cursor in a page's `next` or `previous` "
            "link. Any other cursor answers 404.",
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9+/]+={0,2}$"},
        }  # fmt: skip
        size = integer_parameter(
            self.page_size_query_param, 1, self.max_page_size, "How many results per page.",
            default=self.page_size,
        )  # fmt: skip
        return [cursor, size]


def _is_aware_datetime(text: str) -> bool:
    try:
        value = parse_datetime(text)
    except ValueError:
        return False
    return value is not None and value.tzinfo is not None
