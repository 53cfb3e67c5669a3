"""Run a compiled column list through both back ends."""

from __future__ import annotations

from django.db import connection

from customfields.engine import CompiledColumns
from referrals.models import Referral


def python_rows(compiled: CompiledColumns, client) -> list[list[str]]:
    queryset = Referral.objects.filter(client=client).order_by("created_at", "id")
    return list(compiled.rows(queryset))


def sql_rows(compiled: CompiledColumns, client) -> list[list[str]]:
    with connection.cursor() as cursor:
        cursor.execute(compiled.select_sql(where=f"r.client_id = {int(client.pk)}"))
        return [list(row) for row in cursor.fetchall()]
