"""The access log: who viewed which client's referral data, for superusers only, purged after
ACCESS_LOG_RETENTION_DAYS (privacy.access_log, docs/PRIVACY.md)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deliveries.models import Attempt
from privacy.access_log import access_log_purge
from privacy.access_operations import OPERATIONS
from privacy.models import AccessLogEntry
from tests.conftest import PASSWORD, api_client_for
from tests.contract_helpers import served_schema
from tests.factories import make_file_delivery, make_referral, referral_record
from tests.two_factor import TwoStepClient

pytestmark = pytest.mark.django_db
User = get_user_model()
LOG = "/admin/privacy/accesslogentry/"
MIDDLEWARE = "privacy.middleware.AccessLogMiddleware"


@pytest.fixture
def root(db):
    return User.objects.create_superuser("root", "root@example.com", PASSWORD)


def only_row() -> AccessLogEntry:
    [row] = AccessLogEntry.objects.all()
    return row


# --- What is logged ---------------------------------------------------------------------------


def test_a_client_users_view_of_a_referral_page_is_logged_with_its_client(client, user_a, client_a):
    referral = make_referral(client_a)
    client.force_login(user_a)
    assert client.get(f"/admin/referrals/referral/{referral.pk}/change/").status_code == 200
    row = only_row()
    assert (row.user, row.username, row.role) == (user_a, "alice", "client")
    assert (row.kind, row.operation, row.status) == ("admin", "referral page", 200)
    assert (row.client_ids, row.client_names) == (f" {client_a.pk} ", "Alpha Corp")
    assert (row.referral_id, row.rows, row.ip) == (referral.pk, 1, "127.0.0.1")
    assert row.path == f"/admin/referrals/referral/{referral.pk}/change/"
    assert timezone.now() - row.at < dt.timedelta(minutes=1)


def test_a_client_users_api_list_is_logged_with_its_client_and_count(api_a, client_a, client_b):
    for _ in range(3):
        make_referral(client_a)
    make_referral(client_b)
    response = api_a.get("/api/v1/referrals/", {"page_size": 2})
    assert response.status_code == 200 and len(response.json()["results"]) == 2
    row = only_row()
    assert (row.username, row.kind, row.operation) == ("alice", "api", "v1_referrals_list")
    assert (row.client_ids, row.client_names, row.rows) == (f" {client_a.pk} ", "Alpha Corp", 2)
    assert row.referral_id is None  # a list logs its count, not its ids
    assert row.path == "/api/v1/referrals/"  # the query string (a searched email) is not kept


def test_an_account_managers_list_logs_every_client_on_the_page(
    client, manager, manager_api, client_a, client_b
):
    make_referral(client_a)
    make_referral(client_b)
    assert manager_api.get("/api/v1/referrals/").status_code == 200
    client.force_login(manager)
    assert client.get("/admin/referrals/referral/").status_code == 200
    api_row, admin_row = AccessLogEntry.objects.order_by("id")
    both = f" {client_a.pk}  {client_b.pk} "
    for row, operation in ((api_row, "v1_referrals_list"), (admin_row, "referral list")):
        assert (row.role, row.operation, row.rows, row.client_ids) == (
            "staff", operation, 2, both,
        )  # fmt: skip
        assert row.client_names == "Alpha Corp, Bravo Corp"


def test_an_api_detail_and_a_history_page_are_logged(client, manager, manager_api, client_b):
    referral = make_referral(client_b)
    assert manager_api.get(f"/api/v1/referrals/{referral.pk}/").status_code == 200
    client.force_login(manager)
    assert client.get(f"/admin/referrals/referral/{referral.pk}/history/").status_code == 200
    rows = AccessLogEntry.objects.order_by("id")
    assert [(r.operation, r.referral_id, r.client_names, r.rows) for r in rows] == [
        ("v1_referrals_retrieve", referral.pk, "Bravo Corp", 1),
        ("referral history page", referral.pk, "Bravo Corp", 1),
    ]


def test_another_clients_referral_is_logged_as_refused_under_that_client(
    client, user_a, api_a, client_a, client_b
):
    theirs = make_referral(client_b)
    client.force_login(user_a)
    assert client.get(f"/admin/referrals/referral/{theirs.pk}/change/").status_code == 404
    assert api_a.get(f"/api/v1/referrals/{theirs.pk}/").status_code == 404
    for row in AccessLogEntry.objects.all():
        assert (row.username, row.status, row.refused, row.rows) == ("alice", 404, True, 0)
        assert (row.referral_id, row.client_ids) == (theirs.pk, f" {client_b.pk} ")
    assert AccessLogEntry.objects.count() == 2


def test_a_user_without_the_view_permission_is_logged_as_refused(client_a):
    make_referral(client_a)
    nobody = User.objects.create_user("nobody", password=PASSWORD)  # no permission at all
    assert api_client_for(nobody).get("/api/v1/referrals/").status_code == 403
    row = only_row()
    assert (row.username, row.role, row.status, row.rows, row.client_ids) == (
        "nobody", "other", 403, 0, "",
    )  # fmt: skip


def test_delivery_attempts_holding_request_bodies_are_logged(client, manager, user_a, client_a):
    referral = make_referral(client_a)
    delivery = make_file_delivery(client_a)
    attempt = Attempt.objects.create(
        delivery=delivery, referral_id=referral.pk, method="POST", url="https://crm.example/",
        request_body='{"email": "ada@example.com"}', outcome="delivered", status_code=200,
    )  # fmt: skip
    response = api_client_for(user_a).get(f"/api/v1/deliveries/{delivery.pk}/attempts/")
    assert response.status_code == 200
    client.force_login(manager)
    page = client.get(f"/admin/deliveries/attempt/{attempt.pk}/change/")
    assert page.status_code == 200
    api_row, admin_row = AccessLogEntry.objects.order_by("id")
    assert (api_row.operation, api_row.rows, api_row.client_names) == (
        "v1_deliveries_attempts_list", 1, "Alpha Corp",
    )  # fmt: skip
    assert (admin_row.operation, admin_row.referral_id, admin_row.client_ids) == (
        "delivery attempt page", referral.pk, f" {client_a.pk} ",
    )  # fmt: skip


def test_a_custom_field_preview_of_the_latest_referrals_is_logged(client, manager, manager_api,
                                                                  client_a):  # fmt: skip
    make_referral(client_a)
    make_referral(client_a)
    body = {"client": "alpha", "name": "Upper", "kind": "case", "source": "email",
            "case": "upper"}  # fmt: skip
    response = manager_api.post("/api/v1/custom-fields/preview/", body, format="json")
    assert response.status_code == 200, response.json()
    client.force_login(manager)
    form = {**body, "client": client_a.pk, "rules": "[]", "no_match": "default"}
    page = client.post("/admin/customfields/customfield/preview/", form)
    assert page.status_code == 200, page.content
    rows = AccessLogEntry.objects.order_by("id")
    assert [(r.kind, r.operation, r.rows, r.client_names) for r in rows] == [
        ("api", "v1_custom_fields_preview_create", 2, "Alpha Corp"),
        ("admin", "custom field preview", 2, "Alpha Corp"),
    ]


def test_ingestion_and_requests_without_referral_data_write_no_row(client, manager, manager_api,
                                                                   client_a):  # fmt: skip
    response = manager_api.post("/api/v1/referrals/", referral_record(client_a), format="json")
    assert response.status_code == 201
    many = [referral_record(client_a) for _ in range(3)]
    assert manager_api.post("/api/v1/referrals/", many, format="json").status_code == 201
    assert manager_api.get("/api/v1/deliveries/").status_code == 200
    client.force_login(manager)
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/referrals/client/").status_code == 200
    assert not AccessLogEntry.objects.exists()


def test_anonymous_requests_write_no_row(client, client_a):
    referral = make_referral(client_a)
    assert client.get("/api/v1/referrals/").status_code in (401, 403)
    assert client.get(f"/admin/referrals/referral/{referral.pk}/change/").status_code == 302
    assert not AccessLogEntry.objects.exists()


@pytest.mark.parametrize("kind", ["api", "admin"])
def test_a_logged_request_costs_one_insert_and_nothing_else(
    kind, manager, client_a, client_b, settings
):
    make_referral(client_a)
    make_referral(client_b)

    def statements() -> list[str]:
        # A new client each time: a client loads the middleware at its first request.
        if kind == "api":
            browser, url = api_client_for(manager), "/api/v1/referrals/"
        else:
            browser, url = TwoStepClient(), "/admin/referrals/referral/"
            browser.force_login(manager)
        browser.get(url)  # the session's and the token's first reads, out of the count
        with CaptureQueriesContext(connection) as captured:
            assert browser.get(url).status_code == 200
        return [q["sql"] for q in captured.captured_queries]

    logged = statements()
    settings.MIDDLEWARE = [name for name in settings.MIDDLEWARE if name != MIDDLEWARE]
    unlogged = statements()
    added = [sql for sql in logged if "privacy_accesslogentry" in sql]
    assert len(added) == 1 and added[0].startswith("INSERT"), added
    assert len(logged) == len(unlogged) + 1


def test_api_operations_are_named_by_their_operation_id_in_the_schema(manager_api):
    paths = served_schema(manager_api)["paths"]
    ids = {op["operationId"] for item in paths.values() for op in item.values()}
    named = {op.name for op in OPERATIONS.values() if op.kind == "api"}
    assert named and named <= ids, named - ids


# --- Who sees it ------------------------------------------------------------------------------


def test_a_superuser_lists_filters_and_searches_the_log(
    client, root, user_a, api_a, manager_api, client_a, client_b
):
    mine = make_referral(client_a)
    theirs = make_referral(client_b)
    api_a.get(f"/api/v1/referrals/{mine.pk}/")
    api_a.get(f"/api/v1/referrals/{theirs.pk}/")  # refused: 404
    manager_api.get(f"/api/v1/referrals/{theirs.pk}/")
    client.force_login(root)

    def rows(**params) -> list[tuple[str, int | None, int]]:
        response = client.get(LOG, params)
        assert response.status_code == 200
        return [(r.username, r.referral_id, r.status) for r in response.context["cl"].result_list]

    everything = rows()
    assert len(everything) == 3
    assert rows(user=user_a.pk) == [("alice", theirs.pk, 404), ("alice", mine.pk, 200)]
    assert rows(client=client_b.pk) == [("manager", theirs.pk, 200), ("alice", theirs.pk, 404)]
    assert rows(answer="refused") == [("alice", theirs.pk, 404)]
    assert rows(kind="admin") == []
    assert rows(role="staff") == [("manager", theirs.pk, 200)]
    assert rows(q=str(mine.pk)) == [("alice", mine.pk, 200)]
    assert rows(q="bravo") == [("manager", theirs.pk, 200), ("alice", theirs.pk, 404)]
    today = timezone.now().date().isoformat()
    assert len(rows(at__range__gte=today, at__range__lte=today)) == 3
    assert rows(at__range__lte="2000-01-01") == []
    page = client.get(LOG).content.decode()
    assert "404 refused" in page and "(UTC)" in page

    entry = AccessLogEntry.objects.filter(username="manager").get()
    detail = client.get(f"{LOG}{entry.pk}/change/")
    assert detail.status_code == 200
    body = detail.content.decode()
    assert "v1_referrals_retrieve" in body and 'name="_save"' not in body
    assert client.get(f"{LOG}add/").status_code == 403
    assert client.post(f"{LOG}{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AccessLogEntry.objects.filter(pk=entry.pk).exists()


@pytest.mark.parametrize("who", ["manager", "user_a"])
def test_account_managers_and_client_users_never_see_the_log(client, who, request, client_a):
    user = request.getfixturevalue(who)
    make_referral(client_a)
    client.force_login(user)
    client.get("/admin/referrals/referral/")  # a row of their own exists
    entry = AccessLogEntry.objects.get()
    assert client.get(LOG).status_code == 403
    assert client.get(f"{LOG}{entry.pk}/change/").status_code == 403
    home = client.get("/admin/").content.decode()
    assert "accesslogentry" not in home and "Referral access log" not in home


def test_a_client_users_rows_name_only_their_own_client(client, user_a, user_b, client_a,
                                                        client_b):  # fmt: skip
    """Whatever a client user asks for, their rows say they saw their own client's data and
    nothing else: another client's id shows only on a refusal."""
    mine, theirs = make_referral(client_a), make_referral(client_b)
    client.force_login(user_a)
    for url in ("/admin/referrals/referral/", f"/admin/referrals/referral/{mine.pk}/change/",
                f"/admin/referrals/referral/?client={client_b.pk}",
                f"/admin/referrals/referral/{theirs.pk}/change/"):  # fmt: skip
        client.get(url)
    api_client_for(user_b).get("/api/v1/referrals/")
    alice = AccessLogEntry.objects.filter(user=user_a)
    assert {r.client_ids for r in alice if not r.refused} == {f" {client_a.pk} "}
    assert {r.client_ids for r in alice if r.refused} == {f" {client_b.pk} "}
    assert [r.client_ids for r in AccessLogEntry.objects.filter(user=user_b)] == [
        f" {client_b.pk} "
    ]


def test_rows_outlive_the_user_who_viewed(client, user_a, client_a):
    make_referral(client_a)
    api_client_for(user_a).get("/api/v1/referrals/")
    user_a.delete()
    row = only_row()
    assert (row.user, row.username, row.rows) == (None, "alice", 1)


# --- Retention --------------------------------------------------------------------------------


def _row(at: dt.datetime) -> AccessLogEntry:
    return AccessLogEntry.objects.create(
        at=at, username="x", role="staff", kind="api", operation="v1_referrals_list", path="/",
        status=200,
    )  # fmt: skip


def test_purge_deletes_expired_rows_in_batches_and_keeps_the_rest(settings):
    settings.ACCESS_LOG_RETENTION_DAYS = 30
    now = timezone.now()
    old = [_row(now - dt.timedelta(days=31, minutes=n)) for n in range(7)]
    kept = [_row(now - dt.timedelta(days=29)), _row(now)]
    with CaptureQueriesContext(connection) as captured:
        assert access_log_purge(now=now, batch_size=3) == len(old)
    deletes = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 3  # 3 + 3 + 1
    assert set(AccessLogEntry.objects.values_list("pk", flat=True)) == {r.pk for r in kept}
    assert access_log_purge(now=now) == 0


def test_a_retention_of_zero_keeps_every_row(settings):
    settings.ACCESS_LOG_RETENTION_DAYS = 0
    _row(timezone.now() - dt.timedelta(days=5000))
    assert access_log_purge() == 0
    assert AccessLogEntry.objects.count() == 1
