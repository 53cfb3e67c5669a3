"""The referral list stays cheap as the table grows: one query for the page, a capped count."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from referrals.services import referrals_ingest
from tests.factories import referral_record


def _changelist_queries(client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return [q["sql"] for q in captured.captured_queries]


@pytest.mark.django_db
@pytest.mark.parametrize("viewer", ["manager", "user_a"])
def test_referral_list_queries_do_not_grow_with_rows(client, viewer, client_a, request):
    client.force_login(request.getfixturevalue(viewer))
    url = "/admin/referrals/referral/"
    referrals_ingest(records=[referral_record(client_a) for _ in range(3)])
    few = _changelist_queries(client, url)
    referrals_ingest(records=[referral_record(client_a, campaign=f"c{i}") for i in range(60)])
    many = _changelist_queries(client, url)
    assert len(many) == len(few)


@pytest.mark.django_db
def test_referral_list_counts_at_most_the_cap(client, manager, client_a, settings):
    settings.ADMIN_COUNT_CAP = 100
    referrals_ingest(records=[referral_record(client_a) for _ in range(150)])
    client.force_login(manager)
    response = client.get("/admin/referrals/referral/")
    assert "more than 100 referrals" in response.content.decode()
    counts = [q for q in _changelist_queries(client, "/admin/referrals/referral/") if "COUNT(" in q]
    assert counts and all("LIMIT 101" in q for q in counts), counts


@pytest.mark.django_db
def test_referral_list_shows_the_exact_count_below_the_cap(client, manager, client_a):
    referrals_ingest(records=[referral_record(client_a) for _ in range(7)])
    client.force_login(manager)
    assert "7 referrals" in client.get("/admin/referrals/referral/").content.decode()


@pytest.mark.django_db
def test_search_finds_by_email_external_id_and_name_in_any_case(client, manager, client_a):
    referrals_ingest(records=[
        referral_record(client_a, external_id="EXT-42", email="grace@hopper.example",
                        first_name="Grace", last_name="Hopper"),
        referral_record(client_a, external_id="EXT-43", email="alan@turing.example",
                        first_name="Alan", last_name="Turing"),
    ])  # fmt: skip
    client.force_login(manager)
    for term in ("GRACE@HOPPER.EXAMPLE", "ext-42", "hopper", "grace hopper"):
        body = client.get("/admin/referrals/referral/", {"q": term}).content.decode()
        assert "grace@hopper.example" in body, term
        assert "alan@turing.example" not in body, term


@pytest.mark.django_db
@pytest.mark.parametrize("field_name", ["campaigns", "referrals", "nope", "name"])
def test_autocomplete_refuses_fields_that_are_not_forward_relations(client, manager, field_name):
    client.force_login(manager)
    response = client.get("/admin/autocomplete/", {
        "app_label": "referrals", "model_name": "client", "field_name": field_name, "term": "a",
    })  # fmt: skip
    assert response.status_code == 403


def _deliveries_with_batches(client_a, count: int) -> None:
    from django.utils import timezone

    from deliveries.models import Batch
    from tests.factories import make_file_delivery

    for _ in range(count):
        delivery = make_file_delivery(client_a)
        for number, status in ((1, "sent"), (2, "failed")):
            Batch.objects.create(
                delivery=delivery, number=number, status=status, run_at=timezone.now()
            )


@pytest.mark.django_db
@pytest.mark.parametrize("viewer", ["manager", "user_a"])
def test_delivery_list_queries_do_not_grow_with_rows(client, viewer, client_a, request):
    client.force_login(request.getfixturevalue(viewer))
    url = "/admin/deliveries/delivery/"
    _deliveries_with_batches(client_a, 2)
    few = _changelist_queries(client, url)
    _deliveries_with_batches(client_a, 25)
    many = _changelist_queries(client, url)
    assert len(many) == len(few)
    page = client.get(url).content.decode()
    assert page.count("#2 Failed") == 27  # each row shows its own latest batch
