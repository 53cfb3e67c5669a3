"""Concurrent writes to custom fields, on PostgreSQL with one connection per writer: two saves
that are each valid alone, and invalid together, never both get stored."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from django.db import connection, transaction
from django.forms.models import model_to_dict

from customfields.engine import Column, compile_columns
from customfields.models import CustomField
from tests.conftest import api_client_for
from tests.two_factor import TwoStepClient as BrowserClient

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@contextmanager
def writes_held(table: str, *, writers: int) -> Iterator[Callable[[], None]]:
    """Hold writes to ``table`` (reads go on) until ``writers`` connections wait on a lock:
    each writer has then read what it validates, and no write of theirs has happened yet.
    Without this, one writer could finish before the other starts and no race would occur."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")

        def wait_for_writers() -> None:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                # The statistics views are a snapshot for the transaction: take a new one.
                cursor.execute("SELECT pg_stat_clear_snapshot()")
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
                if cursor.fetchone()[0] >= writers:
                    return
                time.sleep(0.01)
            raise AssertionError(f"{writers} writers never waited on a lock")

        yield wait_for_writers


def run_at_once(*requests: Callable[[], int]) -> list[int]:
    """Run each request in its own thread (its own database connection); their statuses."""
    statuses: list[int] = [0] * len(requests)

    def run(position: int) -> None:
        try:
            statuses[position] = requests[position]()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(requests))]
    with writes_held("customfields_customfield", writers=len(threads)) as wait_for_writers:
        for thread in threads:
            thread.start()
        wait_for_writers()
    for thread in threads:
        thread.join(30)
    return statuses


def two_case_fields(client) -> tuple[CustomField, CustomField]:
    x = CustomField.objects.create(client=client, name="X", kind="case", source="email",
                                   case="upper")  # fmt: skip
    y = CustomField.objects.create(client=client, name="Y", kind="case", source="first_name",
                                   case="lower")  # fmt: skip
    return x, y


def api_patch(user, field: CustomField, **changes) -> Callable[[], int]:
    api = api_client_for(user)
    url = f"/api/v1/custom-fields/{field.pk}/"
    return lambda: api.patch(url, changes, format="json").status_code


def admin_post(user, field: CustomField, **changes) -> Callable[[], int]:
    browser = BrowserClient()
    browser.force_login(user)
    data = {name: value for name, value in model_to_dict(field).items() if name != "id"}
    data = {**data, "rules": json.dumps(data["rules"]), **changes}
    url = f"/admin/customfields/customfield/{field.pk}/change/"
    return lambda: browser.post(url, data).status_code


def assert_no_cycle(client) -> None:
    sources = dict(CustomField.objects.filter(client=client).values_list("name", "source"))
    assert sources != {"X": "Y", "Y": "X"}
    compile_columns(client=client, columns=[Column("X", "x"), Column("Y", "y")])


def test_two_api_patches_closing_a_cycle_between_them_store_one(manager, client_a):
    x, y = two_case_fields(client_a)
    statuses = run_at_once(api_patch(manager, x, source="Y"), api_patch(manager, y, source="X"))
    assert sorted(statuses) == [200, 409]  # the loser's cycle is a conflict
    assert_no_cycle(client_a)


def test_two_admin_saves_closing_a_cycle_between_them_store_one(manager, client_a):
    x, y = two_case_fields(client_a)
    statuses = run_at_once(admin_post(manager, x, source="Y"), admin_post(manager, y, source="X"))
    # The loser's page is shown again with the error on the field (200), not a 500.
    assert sorted(statuses) == [200, 302]
    assert_no_cycle(client_a)


def test_a_delete_racing_a_new_reference_to_the_field_leaves_nothing_dangling(manager, client_a):
    base = CustomField.objects.create(client=client_a, name="Base", kind="case", source="email",
                                      case="upper")  # fmt: skip
    user = CustomField.objects.create(client=client_a, name="Uses", kind="case", source="email",
                                      case="lower")  # fmt: skip
    api = api_client_for(manager)
    statuses = run_at_once(
        lambda: api.delete(f"/api/v1/custom-fields/{base.pk}/").status_code,
        api_patch(manager, user, source="Base"),
    )
    # The new reference first: the delete is refused (in use, 409); the delete first: the
    # reference names a field that is gone (400).
    assert sorted(statuses) in ([200, 409], [204, 400])
    for field in CustomField.objects.filter(client=client_a):
        compile_columns(client=client_a, columns=[Column(field.name, field.name)])
