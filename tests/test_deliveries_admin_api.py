"""Deliveries in the admin and the API: settings checked on their field, secrets encrypted and
write-only, plain FTP refused, actions that work against real servers, health shown."""

from __future__ import annotations

import pytest
from django.db import connection
from django.utils import timezone

from deliveries.models import Batch, Delivery
from deliveries.validation import PLAIN_FTP
from rokt_platform.celery import app
from tests.delivery_helpers import arrived, clear, sftp_delivery
from tests.factories import make_referral

pytestmark = pytest.mark.django_db
ADD = "/admin/deliveries/delivery/add/"
SECRET = "s3cret-Pa55-qz9"


@pytest.fixture
def inline_runs(monkeypatch, django_capture_on_commit_callbacks):
    """``with inline_runs():`` runs what a request queues, in this process, at its commit."""
    monkeypatch.setitem(app.conf, "task_always_eager", True)
    return lambda: django_capture_on_commit_callbacks(execute=True)


def form(client_obj, sshd, **overrides) -> dict:
    data = {
        "client": client_obj.pk, "name": "Nightly", "kind": "sftp", "active": "on",
        "all_campaigns": "on", "starts_at_0": "2026-01-01", "starts_at_1": "00:00:00",
        "host": sshd.host, "port": sshd.port, "username": sshd.username,
        "password": SECRET, "remote_dir": sshd.remote_dir,
        "host_key": sshd.host_keys["ed25519"], "tls_mode": "explicit",
        "columns_text": "external_id -> Id\nemail", "file_name_template": "f_{{{batch}}}.csv",
        "name_time_zone": "client", "header": "on", "delimiter": ",", "quoting": "minimal",
        "marker": "none", "schedule_kind": "daily", "schedule_minute": "0",
        "schedule_time": "06:00",
        # The real-time settings' defaults, as the add page shows them and a browser posts them.
        "http_method": "POST", "body_format": "json", "auth_kind": "none",
        "connect_timeout": "5", "total_timeout": "15", "accepted_statuses": "2xx",
        "success_match": "none", "max_in_flight": "8", "pause_after_minutes": "1440",
    }  # fmt: skip
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def stored_password(delivery) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT password FROM deliveries_delivery WHERE id = %s", [delivery.pk])
        return cursor.fetchone()[0]


def test_a_manager_adds_a_delivery_and_the_secret_is_encrypted_and_never_shown(
    client, manager, client_a, sshd
):
    client.force_login(manager)
    response = client.post(ADD, form(client_a, sshd))
    assert response.status_code == 302, response.context["adminform"].form.errors
    delivery = Delivery.objects.get(name="Nightly")
    assert delivery.password == SECRET
    assert delivery.columns == [{"source": "external_id", "output": "Id"},
                                {"source": "email", "output": "email"}]  # fmt: skip
    raw = stored_password(delivery)
    assert raw.startswith("fernet:") and SECRET not in raw
    assert delivery.next_run_at is not None  # the schedule is armed

    page = client.get(f"/admin/deliveries/delivery/{delivery.pk}/change/")
    assert page.status_code == 200
    assert SECRET not in page.content.decode()
    assert "A value is stored" in page.content.decode()
    # Saving without typing the password keeps it; ticking "remove" removes it.
    keep = form(client_a, sshd, password="", name="Nightly")
    del keep["client"]
    assert client.post(f"/admin/deliveries/delivery/{delivery.pk}/change/", keep).status_code == 302
    delivery.refresh_from_db()
    assert delivery.password == SECRET
    clear_it = {**keep, "clear_password": "on"}
    response = client.post(f"/admin/deliveries/delivery/{delivery.pk}/change/", clear_it)
    # Without a password or key an SFTP delivery cannot log in: refused, nothing changed.
    assert response.status_code == 200
    assert "Give a password or a private key" in response.content.decode()
    delivery.refresh_from_db()
    assert delivery.password == SECRET


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"kind": "ftp"}, "kind", PLAIN_FTP),
        ({"host": "ftp://files.example.com"}, "host", PLAIN_FTP),
        ({"host_key": ""}, "host_key", "Pin the server's host key"),
        ({"host_key": "ssh-ed25519 not-base64!"}, "host_key", "not valid base64"),
        ({"schedule_kind": "cron", "schedule_cron": "99 * * * *"}, "schedule_cron",
         "Not a valid cron"),
        ({"file_name_template": "f_{{{nope}}}.csv"}, "file_name_template", "Unknown placeholder"),
        ({"file_name_template": "fixed.csv"}, "file_name_template", "Include {{{batch}}}"),
        ({"file_name_template": "../f_{{{batch}}}.csv"}, "file_name_template", "only letters"),
        ({"columns_text": "no_such_field -> X"}, "columns_text", "no_such_field"),
        ({"columns_text": "email -> A\nfirst_name -> a"}, "columns_text", "used twice"),
        ({"private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nnope\n"}, "private_key",
         "cannot be read"),
    ],
)  # fmt: skip
def test_bad_settings_are_refused_on_their_field_and_nothing_is_saved(
    client, manager, client_a, sshd, overrides, field, message
):
    client.force_login(manager)
    response = client.post(ADD, form(client_a, sshd, **overrides))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors, errors
    assert message in " ".join(errors[field])
    assert not Delivery.objects.exists()


def test_actions_test_connection_fetch_and_pin_key_send_now_redeliver_resend(
    client, manager, client_a, sshd, inline_runs
):
    clear(sshd.upload_dir)
    wrong = "SHA256:" + "w" * 43
    delivery = sftp_delivery(client_a, sshd, host_key=wrong, file_name_template="a_{{{batch}}}.csv")
    client.force_login(manager)
    base = f"/admin/deliveries/delivery/{delivery.pk}"
    page = client.post(f"{base}/test/", follow=True).content.decode()
    assert "Connection test failed" in page and "does not match" in page

    assert client.get(f"{base}/fetch-key/").status_code == 405  # it connects out: POST only
    shown = client.post(f"{base}/fetch-key/").content.decode()
    assert sshd.host_fingerprints["ed25519"] in shown
    client.post(f"{base}/pin-key/", {"pin": sshd.host_keys["ed25519"]})
    delivery.refresh_from_db()
    assert delivery.host_key == sshd.host_keys["ed25519"]
    page = client.post(f"{base}/test/", follow=True).content.decode()
    assert "Connected and logged in" in page

    person = make_referral(client_a)
    with inline_runs():
        client.post(f"{base}/send-now/")
    assert list(arrived(sshd.upload_dir)) == ["a_000001.csv"]
    assert person.external_id in arrived(sshd.upload_dir)["a_000001.csv"].decode()

    start = timezone.localtime(person.created_at, client_a.zone) - timezone.timedelta(minutes=1)
    end = start + timezone.timedelta(minutes=5)
    with inline_runs():
        response = client.post(f"{base}/redeliver/", {
            "start": start.strftime("%Y-%m-%d %H:%M:%S"),
            "end": end.strftime("%Y-%m-%d %H:%M:%S"),
        })  # fmt: skip
    assert response.status_code == 302
    assert sorted(arrived(sshd.upload_dir)) == ["a_000001.csv", "a_000002_redelivery.csv"]

    (sshd.upload_dir / "a_000001.csv").unlink()  # the client lost the file
    batch = Batch.objects.get(delivery=delivery, number=1)
    with inline_runs():
        client.post("/admin/deliveries/batch/", {"action": "resend", "_selected_action": batch.pk})
    assert "a_000001.csv" in arrived(sshd.upload_dir)
    clear(sshd.upload_dir)


def test_failing_deliveries_show_in_a_banner_for_account_managers_only(
    client, manager, user_a, client_a
):
    delivery = sftp_delivery(client_a, type("S", (), {
        "host": "127.0.0.1", "port": 1, "username": "u", "password": "p", "remote_dir": ".",
        "host_keys": {"ed25519": "SHA256:x"}})())  # fmt: skip
    Delivery.objects.filter(pk=delivery.pk).update(failing_since=timezone.now(), last_error="boom")
    client.force_login(manager)
    page = client.get("/admin/").content.decode()
    assert 'id="failing-deliveries"' in page and delivery.name in page
    client.force_login(user_a)
    page = client.get("/admin/").content.decode()
    assert 'id="failing-deliveries"' not in page


def test_client_users_see_their_delivery_read_only_without_secrets(client, user_a, client_a, sshd):
    delivery = sftp_delivery(client_a, sshd, password=SECRET)
    client.force_login(user_a)
    page = client.get(f"/admin/deliveries/delivery/{delivery.pk}/change/")
    assert page.status_code == 200
    body = page.content.decode()
    assert SECRET not in body and 'name="password"' not in body
    assert 'name="host"' not in body  # read-only: no inputs
    assert client.post(f"/admin/deliveries/delivery/{delivery.pk}/send-now/").status_code == 403


def test_api_manages_deliveries_with_write_only_secrets(manager_api, api_a, client_a, sshd):
    payload = {
        "client": client_a.slug, "name": "Via API", "kind": "sftp", "host": sshd.host,
        "port": sshd.port, "username": sshd.username, "password": sshd.password,
        "remote_dir": sshd.remote_dir, "host_key": sshd.host_keys["ed25519"],
        "columns": [{"source": "external_id", "output": "Id"}],
        "file_name_template": "api_{{{batch}}}.csv", "schedule_kind": "interval",
        "schedule_every_minutes": 15,
    }  # fmt: skip
    response = manager_api.post("/api/v1/deliveries/", payload, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert sshd.password not in response.content.decode() and "password" not in body
    assert body["password_set"] is True and body["next_run_at"]
    url = f"/api/v1/deliveries/{body['id']}/"
    renamed = {"kind": "sftp", "name": "Renamed"}
    assert manager_api.patch(url, renamed, format="json").status_code == 200
    assert Delivery.objects.get(pk=body["id"]).password == sshd.password  # omitted: kept

    twin = manager_api.post("/api/v1/deliveries/", {**payload, "name": "renamed"}, format="json")
    assert twin.status_code == 409  # the name is taken: a conflict, not bad input
    assert twin.json()["name"] == ["This client already has a delivery of that name."]
    refused = manager_api.post("/api/v1/deliveries/", {**payload, "name": "x", "kind": "ftp"},
                               format="json")  # fmt: skip
    assert refused.status_code == 400 and refused.json()["kind"] == [PLAIN_FTP]
    cron = {**payload, "name": "y", "schedule_cron": "x", "schedule_kind": "cron"}
    bad = manager_api.post("/api/v1/deliveries/", cron, format="json")
    assert bad.status_code == 400 and "schedule_cron" in bad.json()

    tested = manager_api.post(f"{url}test/").json()
    assert tested["ok"] is True, tested
    assert manager_api.get(f"{url}batches/").json()["results"] == []

    # Client users: their delivery, read-only, without secrets or login details.
    mine = api_a.get(url)
    assert mine.status_code == 200
    assert sshd.password not in mine.content.decode() and "username" not in mine.json()
    assert api_a.patch(url, {"name": "Mine"}, format="json").status_code == 403
    assert api_a.post(f"{url}run/").status_code == 403


def test_a_manager_sets_up_a_real_time_delivery_in_the_admin(
    client, manager, user_a, client_a, http_receiver, settings
):
    settings.DELIVERY_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    client.force_login(manager)
    data = {
        "client": client_a.pk, "name": "CRM", "kind": "api", "active": "on",
        "all_campaigns": "on", "starts_at_0": "2026-01-01", "starts_at_1": "00:00:00",
        "url": http_receiver.url(), "http_method": "POST", "body_format": "json",
        "columns_text": "external_id -> Id\nemail -> Email",
        "headers_text": "X-Source: rokt", "auth_kind": "bearer", "auth_secret": SECRET,
        "connect_timeout": "5", "total_timeout": "15", "accepted_statuses": "2xx",
        "success_match": "none", "max_in_flight": "8", "pause_after_minutes": "1440",
        # File settings keep their defaults on the add page, as a browser posts them.
        "remote_dir": ".", "tls_mode": "explicit", "file_name_template":
        "{{{client}}}_{{{batch}}}.csv", "name_time_zone": "client", "delimiter": ",",
        "quoting": "minimal", "marker": "none", "schedule_kind": "daily", "schedule_minute": "0",
    }  # fmt: skip
    response = client.post(ADD, data, follow=True)
    assert response.status_code == 200, response.context["adminform"].form.errors
    delivery = Delivery.objects.get(name="CRM")
    page = response.content.decode()
    assert delivery.signing_secret.startswith("whsec_")
    assert delivery.signing_secret in page  # shown this once, for the receiver
    assert SECRET not in page
    change = client.get(f"/admin/deliveries/delivery/{delivery.pk}/change/").content.decode()
    assert delivery.signing_secret not in change and SECRET not in change  # never again

    page = client.post(f"/admin/deliveries/delivery/{delivery.pk}/test/", follow=True)
    assert "Test referral sent: 200" in page.content.decode()
    [request] = http_receiver.requests
    assert request.header("authorization") == f"Bearer {SECRET}"
    assert request.header("x-source") == "rokt"
    attempts = client.get("/admin/deliveries/attempt/").content.decode()
    assert SECRET not in attempts
    detail = client.get(f"/admin/deliveries/attempt/{delivery.attempts.get().pk}/change/")
    assert SECRET not in detail.content.decode() and "[redacted]" in detail.content.decode()

    old = delivery.signing_secret
    rotated = client.post(f"/admin/deliveries/delivery/{delivery.pk}/rotate-secret/", follow=True)
    delivery.refresh_from_db()
    assert delivery.previous_signing_secret == old and delivery.signing_secret != old
    assert delivery.signing_secret in rotated.content.decode()

    client.force_login(user_a)  # the client user sees the attempts, never a secret
    own = client.get(f"/admin/deliveries/attempt/{delivery.attempts.get().pk}/change/")
    assert own.status_code == 200 and SECRET not in own.content.decode()
    page = client.get(f"/admin/deliveries/delivery/{delivery.pk}/change/").content.decode()
    assert delivery.signing_secret not in page and old not in page and SECRET not in page


def test_the_admin_refuses_a_signing_secret_that_cannot_sign(client, manager, client_a, sshd):
    client.force_login(manager)
    data = form(client_a, sshd, kind="api", url="https://crm.example.com/leads",
                signing_secret="my-shared-secret")  # fmt: skip
    response = client.post(ADD, data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "whsec_" in " ".join(errors["signing_secret"]), errors
    assert not Delivery.objects.exists()


# The admin's fields that the API spells another way: columns and headers as JSON lists, a
# "remove the stored secret" box as the secret sent empty.
API_NAME = {"columns_text": "columns", "headers_text": "headers"}


def _schema_enum(schema: dict, prop: dict) -> list | None:
    ref = prop.get("$ref") or next((p["$ref"] for p in prop.get("allOf", []) if "$ref" in p), None)
    return schema["components"]["schemas"][ref.rsplit("/", 1)[1]]["enum"] if ref else None


def test_every_setting_the_admin_offers_is_writable_through_the_api_and_listed_in_the_schema(
    manager_api,
):
    from django import forms as django_forms

    from deliveries.api.serializers import DeliverySerializer
    from deliveries.forms import DeliveryForm

    api_fields = DeliverySerializer().fields
    schema = manager_api.get("/api/schema/", {"format": "json"}).json()
    properties = schema["components"]["schemas"]["Delivery"]["properties"]
    for name, field in DeliveryForm().fields.items():
        api_name = API_NAME.get(name) or name.removeprefix("clear_")
        assert api_name in api_fields and not api_fields[api_name].read_only, name
        if name.startswith("clear_"):
            assert api_fields[api_name].allow_blank, name  # sent empty: removed
        if isinstance(field, django_forms.ModelChoiceField):
            continue  # the client and campaigns: rows, not a fixed set of values
        choices = getattr(field, "choices", None) or getattr(field.widget, "choices", None)
        if not choices:
            continue
        offered = [value for value, _ in choices if value != ""]
        for value in offered:  # each value the admin offers, taken by the API as it is
            assert api_fields[api_name].run_validation(value) == value, (name, value)
        assert _schema_enum(schema, properties[api_name]) == offered, name


def test_a_tab_delimited_delivery_is_made_through_the_api(manager_api, client_a, sshd):
    payload = {
        "client": client_a.slug, "name": "Tabs", "kind": "sftp", "host": sshd.host,
        "port": sshd.port, "username": sshd.username, "password": sshd.password,
        "remote_dir": sshd.remote_dir, "host_key": sshd.host_keys["ed25519"],
        "file_name_template": "t_{{{batch}}}.tsv", "delimiter": "\t", "schedule_time": "06:00",
    }  # fmt: skip
    response = manager_api.post("/api/v1/deliveries/", payload, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["delimiter"] == "\t"
    assert Delivery.objects.get(pk=response.json()["id"]).delimiter == "\t"
    refused = manager_api.post("/api/v1/deliveries/", {**payload, "name": "x", "delimiter": ":"},
                               format="json")  # fmt: skip
    assert refused.status_code == 400 and "delimiter" in refused.json()


def test_a_signing_secret_removed_through_the_api_is_replaced_and_shown_once(manager_api, client_a):
    payload = {"client": client_a.slug, "name": "CRM", "kind": "api",
               "url": "https://crm.example.com/leads"}  # fmt: skip
    created = manager_api.post("/api/v1/deliveries/", payload, format="json").json()
    url = f"/api/v1/deliveries/{created['id']}/"
    renewed = manager_api.patch(url, {"kind": "api", "signing_secret": ""}, format="json")
    assert renewed.status_code == 200, renewed.json()
    stored = Delivery.objects.get(pk=created["id"]).signing_secret
    assert stored.startswith("whsec_") and stored != created["signing_secret"]
    assert renewed.json()["signing_secret"] == stored  # the receiver needs it: shown once
    assert (
        "signing_secret"
        not in manager_api.patch(url, {"kind": "api", "name": "C"}, format="json").json()
    )


def test_the_api_pauses_resumes_and_redelivers_a_range_as_the_admin_does(
    manager_api, api_a, client_a, sshd, inline_runs
):
    clear(sshd.upload_dir)
    delivery = sftp_delivery(client_a, sshd, file_name_template="r_{{{batch}}}.csv")
    url = f"/api/v1/deliveries/{delivery.pk}/"
    person = make_referral(client_a)
    paused = manager_api.post(f"{url}pause/", {"reason": "receiver moving"}, format="json")
    assert paused.status_code == 200 and paused.json()["paused_reason"] == "receiver moving"
    assert api_a.post(f"{url}resume/").status_code == 403  # client users: read-only
    with inline_runs():
        resumed = manager_api.post(f"{url}resume/")
    assert resumed.status_code == 200 and resumed.json()["paused_at"] is None
    assert list(arrived(sshd.upload_dir)) == ["r_000001.csv"]  # what was owed went out

    start = person.created_at - timezone.timedelta(minutes=1)
    end = start + timezone.timedelta(minutes=5)
    window = {"start": start.isoformat(), "end": end.isoformat()}
    assert manager_api.post(f"{url}redeliver/", {**window, "end": window["start"]},
                            format="json").status_code == 400  # fmt: skip
    assert api_a.post(f"{url}redeliver/", window, format="json").status_code == 403
    with inline_runs():
        again = manager_api.post(f"{url}redeliver/", window, format="json")
    assert again.status_code == 200 and again.json() == {"referrals": 1, "batch": 2}
    assert "r_000002_redelivery.csv" in arrived(sshd.upload_dir)
    assert manager_api.post(f"{url}rotate-secret/").status_code == 409  # files sign nothing
    clear(sshd.upload_dir)


def test_the_api_rotates_a_signing_secret_and_shows_the_new_one_once(manager_api, api_a, client_a):
    from tests.factories import make_api_delivery

    delivery = make_api_delivery(client_a, "https://crm.example.com/leads")
    old = delivery.signing_secret
    url = f"/api/v1/deliveries/{delivery.pk}/rotate-secret/"
    assert api_a.post(url).status_code == 403
    rotated = manager_api.post(url)
    assert rotated.status_code == 200
    delivery.refresh_from_db()
    assert rotated.json()["signing_secret"] == delivery.signing_secret != old
    assert delivery.previous_signing_secret == old and rotated.json()["previous_secret_until"]


@pytest.mark.django_db
def test_client_users_read_a_deliverys_columns_as_lines_not_json(client, user_a, client_a, sshd):
    delivery = sftp_delivery(client_a, sshd, password=SECRET)
    Delivery.objects.filter(pk=delivery.pk).update(columns=[
        {"source": "email", "output": "Email"}, {"source": "city", "output": "city"}])  # fmt: skip
    client.force_login(user_a)
    body = client.get(f"/admin/deliveries/delivery/{delivery.pk}/change/").content.decode()
    assert "email -&gt; Email<br>\ncity<br>" in body
    assert '"source"' not in body and "&quot;source&quot;" not in body
