"""Real-time API delivery against a real HTTP receiver on loopback: each format and auth as a
CRM expects, signatures that verify with the public library, and the outcome rules."""

from __future__ import annotations

import base64
import datetime as dt
import json
import xml.etree.ElementTree as ET
from urllib.parse import parse_qsl

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from deliveries.api_dispatch import api_items_due
from deliveries.api_runs import api_item_send
from deliveries.models import Attempt, Delivery, DeliveryItem
from deliveries.replays import replay_not_delivered, replay_referral
from deliveries.services import delivery_rotate_signing_secret, delivery_test_connection
from tests.factories import make_api_delivery, make_referral

pytestmark = pytest.mark.django_db
COLUMNS = [{"source": "external_id", "output": "Id"}, {"source": "email", "output": "Email"},
           {"source": "first_name", "output": "First"}]  # fmt: skip
NASTY = 'Zoë "the <b>" & \\ \n O\'Neil ✓'


@pytest.fixture(autouse=True)
def _loopback_allowed(settings):
    settings.DELIVERY_ALLOWED_NETWORKS = ["127.0.0.0/8"]


def send(delivery, referral) -> tuple[str, DeliveryItem]:
    item = DeliveryItem.objects.get(delivery=delivery, referral=referral)
    outcome = api_item_send(item.pk, delivery.pk)
    item.refresh_from_db()
    return outcome, item


def verify(delivery, request) -> dict:
    headers = {k.lower(): v for k, v in request.headers}
    Webhook(delivery.signing_secret).verify(request.body, headers, json_parse=False)  # or raises
    return headers


@pytest.mark.parametrize("fmt", ["json", "form", "xml", "query"])
def test_each_body_format_from_the_column_list(client_a, http_receiver, fmt):
    method = "GET" if fmt == "query" else "POST"
    delivery = make_api_delivery(client_a, http_receiver.url(), body_format=fmt,
                                 http_method=method, columns=COLUMNS)  # fmt: skip
    person = make_referral(client_a, first_name=NASTY)
    outcome, item = send(delivery, person)
    assert outcome == "delivered" and item.status == "delivered"
    [request] = http_receiver.requests
    assert request.method == method
    expected = {"Id": person.external_id, "Email": person.email, "First": NASTY}
    if fmt == "json":
        assert request.header("content-type") == "application/json"
        assert json.loads(request.body) == expected
    elif fmt == "form":
        assert request.header("content-type") == "application/x-www-form-urlencoded"
        assert dict(parse_qsl(request.body.decode())) == expected
    elif fmt == "xml":
        root = ET.fromstring(request.body)  # noqa: S314 - our own test receiver's input
        assert root.tag == "referral"
        assert {child.tag: child.text for child in root} == expected
    else:
        assert request.body == b""
        assert dict(parse_qsl(request.query)) == expected
    verify(delivery, request)


def test_a_template_with_placeholders_escapes_each_value_for_json(client_a, http_receiver):
    from customfields.models import CustomField

    CustomField.objects.create(client=client_a, name="Shout", kind="case", source="last_name",
                               case="upper")  # fmt: skip
    template = (
        '{"lead": {"mail": "{{{Email}}}", "name": "{{{first_name}}} {{{Shout}}}", '
        '"note": "{{{extra.note}}}"}}'
    )
    delivery = make_api_delivery(client_a, http_receiver.url(), body_template=template)
    person = make_referral(client_a, first_name=NASTY, last_name="smith", extra={"note": 'a"b'})
    assert send(delivery, person)[0] == "delivered"
    body = json.loads(http_receiver.requests[0].body)
    assert body == {"lead": {"mail": person.email, "name": f"{NASTY} SMITH", "note": 'a"b'}}


@pytest.mark.parametrize(
    ("kind", "settings_", "check"),
    [
        ("basic", {"auth_username": "crm-user", "auth_secret": "pässword"},
         lambda r: base64.b64decode(r.header("authorization").split()[1]).decode()
         == "crm-user:pässword"),
        ("bearer", {"auth_secret": "tok-123"},
         lambda r: r.header("authorization") == "Bearer tok-123"),
        ("api_key_header", {"auth_secret": "key-123", "auth_key_name": "X-Api-Key"},
         lambda r: r.header("x-api-key") == "key-123"),
        ("api_key_query", {"auth_secret": "key-123", "auth_key_name": "api_key"},
         lambda r: dict(parse_qsl(r.query))["api_key"] == "key-123"),
    ],
)  # fmt: skip
def test_each_auth_kind_arrives_and_is_redacted_in_the_log(
    client_a, http_receiver, kind, settings_, check
):
    delivery = make_api_delivery(client_a, http_receiver.url(), auth_kind=kind, **settings_)
    assert send(delivery, make_referral(client_a))[0] == "delivered"
    assert check(http_receiver.requests[0])
    attempt = Attempt.objects.get(delivery=delivery)
    logged = json.dumps(attempt.request_headers) + attempt.url
    assert settings_["auth_secret"] not in logged
    assert "[redacted]" in logged


def test_the_webhook_id_is_stable_across_retries_and_signatures_verify(client_a, http_receiver):
    delivery = make_api_delivery(client_a, http_receiver.url())
    person = make_referral(client_a)
    http_receiver.status(503)
    outcome, item = send(delivery, person)
    assert outcome == "failed" and item.status == "failed"
    assert dt.timedelta(seconds=3) < item.next_attempt_at - timezone.now() < dt.timedelta(seconds=7)
    assert send(delivery, person)[0] == "not due"  # the retry waits for its time
    DeliveryItem.objects.filter(pk=item.pk).update(next_attempt_at=timezone.now())
    http_receiver.respond = lambda r: (200, [], b"{}")
    assert send(delivery, person)[0] == "delivered"
    first, second = http_receiver.requests
    ids = {verify(delivery, first)["webhook-id"], verify(delivery, second)["webhook-id"]}
    assert ids == {f"msg_{item.pk}"}
    assert [a.number for a in Attempt.objects.filter(delivery=delivery).order_by("id")] == [1, 2]


def test_rotation_sends_both_signatures_and_each_verifies(client_a, http_receiver):
    delivery = make_api_delivery(client_a, http_receiver.url())
    old = delivery.signing_secret
    delivery_rotate_signing_secret(delivery)
    assert send(delivery, make_referral(client_a))[0] == "delivered"
    request = http_receiver.requests[0]
    headers = {k.lower(): v for k, v in request.headers}
    assert len(headers["webhook-signature"].split()) == 2
    for secret in (old, delivery.signing_secret):
        Webhook(secret).verify(request.body.decode(), headers)


@pytest.mark.parametrize(
    ("answer", "outcome", "retried"),
    [
        ((200, [], b"{}"), "delivered", False),
        ((201, [], b"{}"), "delivered", False),
        ((400, [], b'{"error": "bad email"}'), "rejected", False),
        ((422, [], b"{}"), "rejected", False),
        ((408, [], b""), "failed", True),
        ((429, [], b""), "failed", True),
        ((500, [], b""), "failed", True),
        ((503, [], b""), "failed", True),
    ],
)
def test_outcome_by_status(client_a, http_receiver, answer, outcome, retried):
    delivery = make_api_delivery(client_a, http_receiver.url())
    http_receiver.respond = lambda r: answer
    result, item = send(delivery, make_referral(client_a))
    assert result == outcome
    assert (item.next_attempt_at is not None) == retried
    delivery.refresh_from_db()
    assert not delivery.paused


ACCEPTED = {"success_match": "contains", "success_match_value": '"accepted"'}


@pytest.mark.parametrize(
    ("match", "body", "outcome"),
    [
        (ACCEPTED, b'{"s": "accepted"}', "delivered"),
        (ACCEPTED, b'{"s": "dup"}', "rejected"),
        ({"success_match": "regex", "success_match_value": r"id=\d+"}, b"ok id=42", "delivered"),
        ({"success_match": "regex", "success_match_value": r"id=\d+"}, b"ok", "rejected"),
        ({"success_match": "json_path", "success_json_path": "$.result.status",
          "success_match_value": "ok"}, b'{"result": {"status": "ok"}}', "delivered"),
        ({"success_match": "json_path", "success_json_path": "$.result.status",
          "success_match_value": "ok"}, b'{"result": {"status": "duplicate"}}', "rejected"),
    ],
)  # fmt: skip
def test_a_body_rule_says_whether_the_crm_took_the_record(
    client_a, http_receiver, match, body, outcome
):
    delivery = make_api_delivery(client_a, http_receiver.url(), **match)
    http_receiver.respond = lambda r: (200, [], body)
    result, item = send(delivery, make_referral(client_a))
    assert result == outcome
    if outcome == "rejected":
        assert item.reason and item.next_attempt_at is None  # kept with its reason, not retried


def test_retry_after_is_honoured(client_a, http_receiver):
    delivery = make_api_delivery(client_a, http_receiver.url())
    http_receiver.status(429, headers=[("Retry-After", "120")])
    _, item = send(delivery, make_referral(client_a))
    assert item.next_attempt_at - timezone.now() > dt.timedelta(seconds=115)


def test_410_pauses_the_delivery_and_items_wait_for_the_resume(client_a, http_receiver):
    from deliveries.pausing import delivery_resume

    delivery = make_api_delivery(client_a, http_receiver.url())
    http_receiver.status(410)
    first = make_referral(client_a)
    assert send(delivery, first)[0] == "failed"
    delivery.refresh_from_db()
    assert delivery.paused and "410" in delivery.paused_reason
    later = make_referral(client_a)  # arrives while paused: kept
    assert send(delivery, later)[0] == "delivery paused"
    http_receiver.respond = lambda r: (200, [], b"{}")
    delivery_resume(delivery)
    due = api_items_due()[delivery.pk]
    assert set(due) == set(
        DeliveryItem.objects.filter(delivery=delivery).values_list("pk", flat=True)
    )
    assert api_item_send(due[0]) == "delivered"  # and, holding the token, the others due
    assert set(DeliveryItem.objects.filter(delivery=delivery).values_list("status", flat=True)) \
        == {"delivered"}  # fmt: skip


def test_redirects_are_not_followed(client_a, http_receiver):
    delivery = make_api_delivery(client_a, http_receiver.url())
    http_receiver.redirect("http://127.0.0.1:1/elsewhere")
    outcome, item = send(delivery, make_referral(client_a))
    assert outcome == "failed" and "redirect" in item.reason and "not followed" in item.reason
    assert len(http_receiver.requests) == 1


PRIVATE = ["http://127.0.0.1:{port}/hook", "http://localhost:{port}/hook",
           "http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/"]  # fmt: skip


@pytest.mark.parametrize("url", PRIVATE)
def test_private_targets_are_refused_and_pause_the_delivery(client_a, http_receiver, settings, url):
    settings.DELIVERY_ALLOWED_NETWORKS = []
    port = http_receiver.url().split(":")[2].split("/")[0]
    delivery = make_api_delivery(client_a, url.format(port=port))
    assert send(delivery, make_referral(client_a))[0] == "failed"
    assert http_receiver.requests == []
    attempt = Attempt.objects.get(delivery=delivery)
    assert attempt.error_class == "ssrf_refused"
    delivery.refresh_from_db()
    assert delivery.paused


def test_continuous_failure_pauses_after_the_configured_time(client_a, http_receiver):
    delivery = make_api_delivery(client_a, http_receiver.url(), pause_after_minutes=30)
    http_receiver.status(500)
    send(delivery, make_referral(client_a))
    delivery.refresh_from_db()
    assert delivery.failing_since and not delivery.paused
    Delivery.objects.filter(pk=delivery.pk).update(
        failing_since=timezone.now() - dt.timedelta(minutes=31)
    )
    send(delivery, make_referral(client_a))
    delivery.refresh_from_db()
    assert delivery.paused and "failing for 30 min" in delivery.paused_reason


def test_orphaned_and_lost_items_are_found_by_the_tick(client_a, http_receiver):
    delivery = make_api_delivery(client_a, http_receiver.url())
    orphan = DeliveryItem.objects.get(delivery=delivery, referral=make_referral(client_a))
    lost = DeliveryItem.objects.get(delivery=delivery, referral=make_referral(client_a))
    fresh = DeliveryItem.objects.get(delivery=delivery, referral=make_referral(client_a))
    past = timezone.now() - dt.timedelta(minutes=5)
    DeliveryItem.objects.filter(pk=orphan.pk).update(status="sending", lease_until=past)
    DeliveryItem.objects.filter(pk=lost.pk).update(created_at=past)
    due = api_items_due()[delivery.pk]
    assert set(due) == {orphan.pk, lost.pk}  # the fresh one's message is still on its way
    assert fresh.pk not in due


def test_the_watchdog_says_how_many_retries_are_overdue(client_a, http_receiver, caplog,
                                                       monkeypatch):  # fmt: skip
    from deliveries import api_dispatch

    delivery = make_api_delivery(client_a, http_receiver.url(), columns=COLUMNS)
    now = timezone.now()
    items = [send(delivery, make_referral(client_a))[1] for _ in range(4)]
    assert api_dispatch.api_retries_overdue(now=now) == 0
    DeliveryItem.objects.filter(pk__in=[i.pk for i in items[:3]]).update(
        status="failed", next_attempt_at=now - dt.timedelta(minutes=6)
    )
    assert api_dispatch.api_retries_overdue(now=now) == 3
    assert "watchdog: 3 real-time retries are over 0:05:00 late" in caplog.text
    monkeypatch.setattr(api_dispatch, "_COUNT_AT_MOST", 2)  # a backlog counted only so far
    assert api_dispatch.api_retries_overdue(now=now) == 3
    assert "watchdog: more than 2 real-time retries are over 0:05:00 late" in caplog.text


def test_replays_and_the_test_referral(client_a, http_receiver):
    delivery = make_api_delivery(client_a, http_receiver.url())
    person = make_referral(client_a)
    http_receiver.status(400)
    assert send(delivery, person)[0] == "rejected"
    http_receiver.respond = lambda r: (200, [], b"{}")
    assert replay_not_delivered(delivery) == 1
    assert send(delivery, person)[0] == "delivered"
    assert replay_referral(delivery, person.pk) == 1
    assert send(delivery, person)[0] == "delivered"
    ids = {r.header("webhook-id") for r in http_receiver.requests}
    assert len(http_receiver.requests) == 3 and len(ids) == 1  # a replay keeps its id
    message = delivery_test_connection(delivery)
    assert message.startswith("Test referral sent: 200")
    assert Attempt.objects.filter(delivery=delivery, test=True).count() == 1


def test_the_delivery_list_shows_health_at_a_glance(client, manager, client_a, http_receiver):
    delivery = make_api_delivery(client_a, http_receiver.url())
    send(delivery, make_referral(client_a))
    http_receiver.status(500)
    send(delivery, make_referral(client_a))
    make_referral(client_a)  # owed, not yet sent
    client.force_login(manager)
    page = client.get("/admin/deliveries/delivery/").content.decode()
    assert "50% of 2" in page  # 24 h delivered
    assert "failing since" in page
    row = page[page.index(delivery.name):]
    assert '<td class="field-pending">2</td>' in row  # the failed one and the unsent one


def test_the_api_creates_lists_attempts_and_replays(manager_api, api_a, client_a, http_receiver):
    payload = {"client": client_a.slug, "name": "CRM", "kind": "api", "url": http_receiver.url(),
               "columns": COLUMNS, "auth_kind": "bearer", "auth_secret": "tok-1"}  # fmt: skip
    created = manager_api.post("/api/v1/deliveries/", payload, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["signing_secret"].startswith("whsec_")  # shown once, on creation
    assert "tok-1" not in created.content.decode() and body["auth_secret_set"] is True
    url = f"/api/v1/deliveries/{body['id']}/"
    again = manager_api.get(url).json()
    assert "signing_secret" not in again and "auth_secret" not in again

    delivery = Delivery.objects.get(pk=body["id"])
    person = make_referral(client_a)
    http_receiver.status(400)
    assert send(delivery, person)[0] == "rejected"
    attempts = manager_api.get(f"{url}attempts/?referral={person.pk}").json()["results"]
    assert [(a["status_code"], a["outcome"]) for a in attempts] == [(400, "rejected")]
    assert "tok-1" not in json.dumps(attempts)
    mine = api_a.get(f"{url}attempts/")  # the client user sees their attempts
    assert mine.status_code == 200 and len(mine.json()["results"]) == 1
    assert api_a.post(f"{url}replay/", {"not_delivered": True}, format="json").status_code == 403

    bad = manager_api.post(f"{url}replay/", {"not_delivered": True, "referral": 1}, format="json")
    assert bad.status_code == 400
    replayed = manager_api.post(f"{url}replay/", {"not_delivered": True}, format="json")
    assert replayed.json() == {"replayed": 1}
    http_receiver.respond = lambda r: (200, [], b"{}")
    assert send(delivery, person)[0] == "delivered"
    tested = manager_api.post(f"{url}test/").json()
    assert tested["ok"] is True, tested


@pytest.mark.django_db(transaction=True)
def test_a_broker_that_is_down_never_fails_ingestion(client_a, http_receiver, monkeypatch):
    """The referral is stored and owed; the retry tick sends what the broker did not take."""
    from deliveries import api_runs

    def broker_down(*args, **kwargs):
        raise ConnectionError("redis is down")

    delivery = make_api_delivery(client_a, http_receiver.url())
    monkeypatch.setattr(api_runs, "api_items_enqueue", broker_down)
    person = make_referral(client_a)  # commits; the enqueue fails after the commit
    item = DeliveryItem.objects.get(delivery=delivery, referral=person)
    assert item.status == "pending"
    DeliveryItem.objects.filter(pk=item.pk).update(
        created_at=timezone.now() - dt.timedelta(minutes=2)
    )
    assert api_items_due() == {delivery.pk: [item.pk]}


def test_an_address_the_sender_cannot_read_is_refused_when_saved(client_a):
    from deliveries.services import DeliveryInvalid

    for url in ["https://crm.example.com:99999/hook", "https://crm example.com/hook",
                "ftp://crm.example.com/", "https://user:pw@crm.example.com/",
                " https://crm.example.com/hook", "https://crm.example.com:0/hook"]:  # fmt: skip
        with pytest.raises(DeliveryInvalid) as caught:
            make_api_delivery(client_a, url)
        assert "url" in caught.value.errors, url


def test_a_request_that_cannot_be_built_is_a_recorded_failure(client_a, http_receiver):
    delivery = make_api_delivery(client_a, http_receiver.url(), auth_kind="api_key_query",
                                 auth_key_name="apikey", auth_secret="key-qz9")  # fmt: skip
    # Saved before a check existed, or by hand: the sender must still record, never crash,
    # and stop until the address is fixed: retrying cannot help.
    _misconfigure(delivery, url="http://127.0.0.1:99999/hook")
    outcome, item = send(delivery, make_referral(client_a))
    assert outcome == "failed" and item.status == "failed"
    attempt = Attempt.objects.get(delivery=delivery)
    assert attempt.error_class == "configuration" and "address cannot be read" in attempt.reason
    delivery.refresh_from_db()
    assert delivery.paused and "key-qz9" not in attempt.url + attempt.reason + \
        delivery.paused_reason + delivery.last_error  # fmt: skip


def _misconfigure(delivery, **columns) -> None:
    """Store settings as they are, unchecked (saves refuse them), as a save would: a new
    version, which every worker's copy of the delivery gives way to."""
    Delivery.objects.filter(pk=delivery.pk).update(updated_at=timezone.now(), **columns)


# A setting, a value of it that no send can use (each as a save could store it before a check
# existed, or a custom field it names was deleted), and what the pause says.
UNUSABLE = {
    "columns": [{"source": "Nickname", "output": "Nick"}],
    "body_template": '{"nick": "{{{Nickname}}}"}',
    "signing_secret": "whsec_c2hvcnQ=",
}
SAYS = {
    "columns": "the column list: 'Nickname' is neither a standard field nor one of the client's",
    "body_template": "the body template: 'Nickname' is neither",
    "signing_secret": "the signing secret: A signing secret holds 24 to 64 bytes",
}


@pytest.mark.parametrize("setting", UNUSABLE)
def test_a_setting_no_send_can_use_is_recorded_pauses_and_warns_at_once(
    client_a, http_receiver, manager, setting
):
    from django.core import mail

    from deliveries.api_runs import api_items_send
    from deliveries.pausing import delivery_resume

    manager.email = "am@example.com"
    manager.save()
    delivery = make_api_delivery(client_a, http_receiver.url(), columns=COLUMNS)
    usable = getattr(delivery, setting)
    _misconfigure(delivery, **{setting: UNUSABLE[setting]})
    items = _ingest_items(client_a, delivery, 3)

    outcomes = api_items_send([item.pk for item in items], delivery.pk)

    # One attempt says why; the rest are put back untried; nothing reached the receiver.
    assert list(outcomes.values()) == ["failed", "delivery paused", "delivery paused"]
    assert http_receiver.requests == []
    attempt = Attempt.objects.get(delivery=delivery)
    assert attempt.error_class == "configuration" and SAYS[setting] in attempt.reason
    delivery.refresh_from_db()
    assert delivery.paused and SAYS[setting] in delivery.paused_reason
    assert "Fix the delivery's settings, then resume it" in delivery.paused_reason
    assert len(mail.outbox) == 1 and SAYS[setting] in mail.outbox[0].body
    assert api_items_due() == {}  # paused: not retried, not taken for lost

    # Fixed and resumed: every item goes, exactly once.
    _misconfigure(delivery, **{setting: usable})
    delivery_resume(delivery)
    assert set(api_items_send(api_items_due()[delivery.pk], delivery.pk).values()) == {
        "delivered"
    }
    assert sorted(r.header("webhook-id") for r in http_receiver.requests) == sorted(
        f"msg_{item.pk}" for item in items
    )
    assert set(DeliveryItem.objects.filter(delivery=delivery).values_list("status", flat=True)) \
        == {"delivered"}  # fmt: skip


def test_credential_like_custom_headers_are_redacted_in_the_log(client_a, http_receiver):
    delivery = make_api_delivery(client_a, http_receiver.url(), headers=[
        {"name": "X-Api-Key", "value": "key-qz9"}, {"name": "X-Source", "value": "rokt"},
    ])  # fmt: skip
    send(delivery, make_referral(client_a))
    assert http_receiver.requests[0].header("x-api-key") == "key-qz9"
    logged = dict(Attempt.objects.get(delivery=delivery).request_headers)
    assert logged["X-Api-Key"] == "[redacted]" and logged["X-Source"] == "rokt"


def test_the_tick_queues_an_item_once_per_attempt_not_once_per_tick(client_a, http_receiver):
    delivery = make_api_delivery(client_a, http_receiver.url())
    lost = DeliveryItem.objects.get(delivery=delivery, referral=make_referral(client_a))
    DeliveryItem.objects.filter(pk=lost.pk).update(
        created_at=timezone.now() - dt.timedelta(minutes=2)
    )
    assert api_items_due() == {delivery.pk: [lost.pk]}
    assert api_items_due() == {}  # already queued: a backlog must not multiply messages
    later = timezone.now() + dt.timedelta(minutes=2)
    # Still not sent a minute on: queued again.
    assert api_items_due(now=later) == {delivery.pk: [lost.pk]}


def test_a_spent_budget_leaves_the_item_for_later(client_a, http_receiver, monkeypatch):
    from deliveries import api_runs

    class Spent:
        def acquire(self, *args):
            return None

        def note_waiting(self, delivery_id):
            pass

    delivery = make_api_delivery(client_a, http_receiver.url())
    person = make_referral(client_a)
    monkeypatch.setattr(api_runs, "budget", Spent)
    outcome, item = send(delivery, person)
    assert outcome == "waiting for budget" and http_receiver.requests == []
    assert (item.status, item.attempts, item.lease_until) == ("pending", 0, None)
    assert item.next_attempt_at <= timezone.now() and item.queued_at is None  # due...
    assert api_items_due() == {delivery.pk: [item.pk]}  # ...for the tick, as slots free up


def test_a_full_budget_defers_the_item_before_any_work(client_a, http_receiver, monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from deliveries import api_runs

    class Full:
        def acquire(self, *args):
            return None

        def note_waiting(self, delivery_id):
            pass

    delivery = make_api_delivery(client_a, http_receiver.url())
    item = DeliveryItem.objects.get(delivery=delivery, referral=make_referral(client_a))
    monkeypatch.setattr(api_runs, "budget", Full)
    assert api_item_send(item.pk, delivery.pk) != "delivered"  # the worker's copy, warm
    with CaptureQueriesContext(connection) as queries:
        assert api_item_send(item.pk, delivery.pk) == "waiting for budget"
    # The token comes first: without one, the item is deferred, nothing more: no read, no
    # claim, no referral read, no request.
    statements = [query["sql"] for query in queries]
    assert len(statements) == 1 and "queued_at = NULL" in statements[0]
    assert http_receiver.requests == []
    item.refresh_from_db()
    assert (item.status, item.attempts) == ("pending", 0)
    assert item.next_attempt_at <= timezone.now()  # due, for a send that holds a token


# Chunks: the many items one transaction stores go out a chunk per task.


def _ingest_items(client, delivery, count: int) -> list[DeliveryItem]:
    from referrals.services import referrals_ingest
    from tests.factories import referral_record

    referrals_ingest(records=[referral_record(client) for _ in range(count)])
    return list(DeliveryItem.objects.filter(delivery=delivery).order_by("pk"))


def test_a_chunk_sends_each_item_once_as_its_own_request(client_a, http_receiver):
    from deliveries.api_runs import api_items_send

    delivery = make_api_delivery(client_a, http_receiver.url(), columns=COLUMNS)
    items = _ingest_items(client_a, delivery, 30)
    outcomes = api_items_send([item.pk for item in items])
    assert outcomes == {item.pk: "delivered" for item in items}
    bodies = {r.header("webhook-id"): json.loads(r.body) for r in http_receiver.requests}
    assert len(http_receiver.requests) == 30
    for item in items:  # each request carries its own referral, under its own id and signature
        assert bodies[f"msg_{item.pk}"]["Id"] == item.referral.external_id
    for request in http_receiver.requests:
        verify(delivery, request)
    assert set(DeliveryItem.objects.filter(delivery=delivery).values_list("status", "attempts")) \
        == {("delivered", 1)}  # fmt: skip
    assert Attempt.objects.filter(delivery=delivery, outcome="delivered").count() == 30
    assert api_items_send([item.pk for item in items]) == {}  # nothing open any more


def test_a_transactions_items_are_queued_apart_per_delivery(client_a, monkeypatch):
    """A chunk never mixes endpoints (a slow one would hold up the other's items); a lone
    item goes as itself; many spread over several chunks."""
    from deliveries import tasks
    from deliveries.api_runs import api_items_enqueue

    queued = []
    monkeypatch.setattr(tasks.send_api_item, "delay",
                        lambda pk, delivery_id: queued.append(("one", pk, delivery_id)))
    monkeypatch.setattr(tasks.send_api_items, "delay",
                        lambda ids, delivery_id: queued.append(("many", ids, delivery_id)))
    api_items_enqueue({1: [10], 2: list(range(100, 140)), 3: list(range(200, 1000))})
    assert ("one", 10, 1) in queued  # each message names its delivery
    chunks_2 = [ids for kind, ids, delivery in queued if kind == "many" and delivery == 2]
    chunks_3 = [ids for kind, ids, delivery in queued if kind == "many" and delivery == 3]
    assert all(ids[0] < 200 for ids in chunks_2) and all(ids[0] >= 200 for ids in chunks_3)
    assert sorted(pk for ids in chunks_2 for pk in ids) == list(range(100, 140))
    assert len(chunks_2) == 8  # 40 items over the 8 requests an endpoint may take at once
    assert sorted(pk for ids in chunks_3 for pk in ids) == list(range(200, 1000))
    assert max(len(ids) for ids in chunks_3) == 50


def test_ingestion_queues_its_items_and_the_tasks_deliver_them(
    client_a, http_receiver, monkeypatch
):
    """Eager here; through a real worker in test_api_delivery_processes."""
    from django.test import TestCase

    from referrals.services import referrals_ingest
    from rokt_platform.celery import app
    from tests.factories import referral_record

    monkeypatch.setitem(app.conf, "task_always_eager", True)
    first = make_api_delivery(client_a, http_receiver.url())
    second = make_api_delivery(client_a, http_receiver.url("/other"))
    with TestCase.captureOnCommitCallbacks(execute=True):
        referrals_ingest(records=[referral_record(client_a) for _ in range(12)])
    assert set(DeliveryItem.objects.values_list("status", flat=True)) == {"delivered"}
    paths = sorted(r.path for r in http_receiver.requests)
    assert paths == ["/hook"] * 12 + ["/other"] * 12
    assert DeliveryItem.objects.filter(delivery__in=[first, second]).count() == 24


class _Tokens:
    """A budget that counts what it gives."""

    def __init__(self):
        self.acquired, self.released = 0, 0

    def acquire(self, *args):
        self.acquired += 1
        return f"token {self.acquired}"

    def release(self, *args):
        self.released += 1

    def keep_for_waiting(self, *args):  # nobody waiting: given back
        self.released += 1
        return False


def test_a_chunk_holds_one_token_and_goes_on_with_its_deliverys_due_items(
    client_a, client_b, http_receiver, monkeypatch
):
    """Its requests go one after another: one slot of the endpoint's budget, taken once. With
    time left, it sends the delivery's items that other sends left for want of a token (and
    due retries), never another delivery's."""
    from deliveries import api_runs
    from deliveries.api_runs import api_items_send

    delivery = make_api_delivery(client_a, http_receiver.url())
    other = make_api_delivery(client_b, http_receiver.url("/other"))
    items = _ingest_items(client_a, delivery, 10)
    theirs = _ingest_items(client_b, other, 2)
    left = [item.pk for item in items[4:]]
    past = timezone.now() - dt.timedelta(seconds=1)
    DeliveryItem.objects.filter(pk__in=left).update(next_attempt_at=past)
    DeliveryItem.objects.filter(pk__in=[item.pk for item in theirs]).update(next_attempt_at=past)
    DeliveryItem.objects.filter(pk=items[-1].pk).update(status="failed", attempts=2)
    tokens = _Tokens()
    monkeypatch.setattr(api_runs, "budget", lambda: tokens)
    outcomes = api_items_send([item.pk for item in items[:4]])
    assert outcomes == {item.pk: "delivered" for item in items}
    assert (tokens.acquired, tokens.released) == (1, 1)
    assert {r.path for r in http_receiver.requests} == {"/hook"}
    assert DeliveryItem.objects.get(pk=items[-1].pk).attempts == 3
    assert set(DeliveryItem.objects.filter(delivery=other).values_list("status", flat=True)) \
        == {"pending"}  # fmt: skip


def test_items_left_for_want_of_a_token_go_with_the_chunk_that_holds_it(
    client_a, http_receiver, monkeypatch
):
    """An endpoint with one slot: a chunk holds it; a send meanwhile finds none and leaves its
    items in the database, and the chunk sends them as soon as it is done with its own, not
    a tick later."""
    from deliveries import api_runs
    from deliveries.api_runs import api_items_send
    from deliveries.budget import LocalBudget

    delivery = make_api_delivery(client_a, http_receiver.url(), max_in_flight=1)
    items = _ingest_items(client_a, delivery, 6)
    mine, later = [item.pk for item in items[:3]], [item.pk for item in items[3:]]
    one_slot = LocalBudget()
    monkeypatch.setattr(api_runs, "budget", lambda: one_slot)
    left: dict = {}
    send_one = api_runs._send_one

    def meanwhile(*args):  # while the chunk's first request is out
        if not left:
            left.update(api_items_send(later, delivery.pk))
        return send_one(*args)

    monkeypatch.setattr(api_runs, "_send_one", meanwhile)
    outcomes = api_items_send(mine, delivery.pk)
    assert left == dict.fromkeys(later, "waiting for budget")
    assert outcomes == dict.fromkeys(mine + later, "delivered")
    assert len(http_receiver.requests) == 6


def test_a_chunk_that_runs_long_leaves_the_rest_due_now(client_a, http_receiver, monkeypatch):
    from deliveries import api_runs
    from deliveries.api_runs import api_items_send

    delivery = make_api_delivery(client_a, http_receiver.url())
    items = _ingest_items(client_a, delivery, 5)
    monkeypatch.setattr(api_runs, "_CHUNK_SECONDS", 0.0)
    outcomes = api_items_send([item.pk for item in items])
    assert list(outcomes.values()) == ["delivered"] + ["chunk ran long"] * 4
    left = DeliveryItem.objects.filter(delivery=delivery, status="pending")
    assert left.count() == 4 and all(i.next_attempt_at <= timezone.now() for i in left)
    assert set(api_items_due()[delivery.pk]) == {item.pk for item in left}


def test_a_paused_deliverys_items_stay_in_a_mixed_chunk(client_a, client_b, http_receiver):
    from deliveries.api_runs import api_items_send
    from deliveries.pausing import delivery_pause

    paused = make_api_delivery(client_a, http_receiver.url("/paused"))
    live = make_api_delivery(client_b, http_receiver.url("/live"))
    mine = _ingest_items(client_a, paused, 3)
    theirs = _ingest_items(client_b, live, 3)
    delivery_pause(paused, "by hand")
    outcomes = api_items_send([item.pk for item in mine + theirs])
    assert {outcomes[item.pk] for item in mine} == {"delivery paused"}
    assert {outcomes[item.pk] for item in theirs} == {"delivered"}
    assert {r.path for r in http_receiver.requests} == {"/live"}


def test_the_tick_queues_no_more_than_an_endpoints_budget_can_take(
    client_a, client_b, http_receiver, monkeypatch
):
    from deliveries import api_dispatch

    busy = make_api_delivery(client_a, http_receiver.url())
    idle = make_api_delivery(client_b, http_receiver.url())
    backlog = _ingest_items(client_a, busy, 60)
    waiting = _ingest_items(client_b, idle, 2)
    due_now = timezone.now()
    DeliveryItem.objects.update(status="failed", next_attempt_at=due_now)

    from deliveries.budget import LocalBudget

    class OneSlotForBusy(LocalBudget):
        def free(self, delivery_id, limit):
            return 0 if delivery_id == busy.pk else limit

    monkeypatch.setattr(api_dispatch, "budget", lambda: OneSlotForBusy())
    assert api_items_due() == {idle.pk: [item.pk for item in waiting]}  # busy's stay due
    OneSlotForBusy.free = lambda self, delivery_id, limit: 1
    due = api_items_due()
    assert due == {busy.pk: [item.pk for item in backlog[:50]]}  # one chunk, oldest first


def test_the_sends_referral_read_gives_what_values_list_gives(client_a):
    """The send reads referrals by a statement compiled once: the same values, converted the
    same way, as the ORM's values_list, for every standard column, extra keys and nested
    JSON, one id or many."""
    from customfields.engine import Column, compile_columns, standard_columns
    from deliveries.api_items import referral_values
    from referrals.models import Referral

    columns = [*standard_columns(), Column("extra.tier", "Tier"), Column("extra.nested", "N")]
    lookups = tuple(compile_columns(client=client_a, columns=columns).lookups)
    ids = [make_referral(client_a, extra={"tier": "gold", "nested": {"a": [1, "ü"]}}).pk,
           make_referral(client_a, first_name=NASTY, extra={}).pk]  # fmt: skip
    expected = {pk: tuple(values) for pk, *values in
                Referral.objects.filter(pk__in=ids).values_list("pk", *lookups)}  # fmt: skip
    assert referral_values(lookups, ids) == expected
    assert referral_values(lookups, ids[:1]) == {ids[0]: expected[ids[0]]}
    assert referral_values(lookups, [-1]) == {}


def test_a_410_mid_chunk_sends_nothing_more_and_keeps_the_rest(client_a, http_receiver):
    from deliveries.api_runs import api_items_send
    from deliveries.pausing import delivery_resume

    delivery = make_api_delivery(client_a, http_receiver.url())
    items = _ingest_items(client_a, delivery, 6)
    answers = iter([200, 200, 410])
    http_receiver.respond = lambda r: (next(answers, 200), [], b"{}")
    outcomes = api_items_send([item.pk for item in items])
    assert list(outcomes.values()) == ["delivered", "delivered", "failed"] + \
        ["delivery paused"] * 3  # fmt: skip
    assert len(http_receiver.requests) == 3
    delivery.refresh_from_db()
    assert delivery.paused and "410" in delivery.paused_reason
    kept = DeliveryItem.objects.filter(pk__in=[item.pk for item in items[3:]])
    assert set(kept.values_list("status", "attempts")) == {("pending", 0)}
    delivery_resume(delivery)  # the rest go out on resume, the 410'd one again too
    assert set(api_items_send([item.pk for item in items[2:]]).values()) == {"delivered"}


def test_a_secret_no_key_decrypts_pauses_the_delivery_and_sends_nothing(client_a, http_receiver):
    from deliveries.delivery_cache import _cache

    delivery = make_api_delivery(client_a, http_receiver.url())
    item = DeliveryItem.objects.get(delivery=delivery, referral=make_referral(client_a))
    # As after ROKT_ENCRYPTION_KEYS lost the key it was written with (and a save, so no
    # worker's copy of the delivery is still used).
    from django.db import connection

    with connection.cursor() as cursor:  # raw: the field would encrypt what it is given
        cursor.execute(
            "UPDATE deliveries_delivery SET signing_secret = %s, updated_at = %s WHERE id = %s",
            ["fernet:gAAAAABnot-a-token", timezone.now(), delivery.pk],
        )
    _cache.clear()
    assert api_item_send(item.pk) == "delivery paused"
    delivery = Delivery.objects.defer("signing_secret").get(pk=delivery.pk)
    assert delivery.paused and "enter the secrets again" in delivery.paused_reason
    assert http_receiver.requests == []
    item.refresh_from_db()
    assert (item.status, item.attempts) == ("pending", 0)  # kept for when it is fixed


def test_a_fresh_lone_referral_does_not_look_for_a_backlog(client_a, http_receiver):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    delivery = make_api_delivery(client_a, http_receiver.url())
    warm = DeliveryItem.objects.get(delivery=delivery, referral=make_referral(client_a))
    fresh = DeliveryItem.objects.get(delivery=delivery, referral=make_referral(client_a))
    waiting = DeliveryItem.objects.get(delivery=delivery, referral=make_referral(client_a))
    assert api_item_send(warm.pk) == "delivered"  # the worker's copy of the delivery, warm
    DeliveryItem.objects.filter(pk=waiting.pk).update(
        next_attempt_at=timezone.now() - dt.timedelta(seconds=1)
    )
    with CaptureQueriesContext(connection) as queries:
        assert api_item_send(fresh.pk, delivery.pk) == "delivered"
    # The claim, the referral, the record: no look for the delivery's due items.
    assert not [q for q in queries if "ORDER BY i.next_attempt_at" in q["sql"]]
    if connection.vendor == "postgresql":  # the claim reads the referral in one statement
        assert len(queries) == 2
    waiting.refresh_from_db()
    assert waiting.status == "pending"  # left for its own message, or the tick
    assert api_item_send(waiting.pk) == "delivered"  # itself put off: it would look


def test_a_delivery_paused_by_hand_stops_a_chunk_going_on_with_its_backlog(
    client_a, http_receiver, monkeypatch
):
    from deliveries import api_items
    from deliveries.api_runs import api_items_send
    from deliveries.pausing import delivery_pause

    delivery = make_api_delivery(client_a, http_receiver.url())
    items = _ingest_items(client_a, delivery, 4)
    backlog = [item.pk for item in items[2:]]
    DeliveryItem.objects.filter(pk__in=backlog).update(
        next_attempt_at=timezone.now() - dt.timedelta(seconds=1)
    )
    claim = api_items.items_claim_and_read

    def claim_then_pause(*args, **kwargs):  # an account manager pauses it meanwhile
        claimed = claim(*args, **kwargs)
        delivery_pause(delivery, "by hand")
        return claimed

    monkeypatch.setattr("deliveries.api_runs.items_claim_and_read", claim_then_pause)
    outcomes = api_items_send([item.pk for item in items[:2]])
    assert outcomes == {items[0].pk: "delivered", items[1].pk: "delivered"}
    assert set(DeliveryItem.objects.filter(pk__in=backlog).values_list("status", flat=True)) \
        == {"pending"}  # fmt: skip


def test_a_save_reaches_the_next_send_at_once_whatever_the_workers_copy(
    client_a, http_receiver, monkeypatch
):
    """The send takes its endpoint's token with the worker's copy of the delivery, then its
    claim reads the delivery's version: a save made since (new columns, headers, longer
    timeouts) goes into that very request, and a longer lease covers its longer timeouts."""
    from deliveries import api_runs
    from deliveries.services import delivery_save

    delivery = make_api_delivery(client_a, http_receiver.url(), columns=COLUMNS)
    outcome, _ = send(delivery, make_referral(client_a))  # the worker's copy, warm
    assert outcome == "delivered"
    delivery.columns = [{"source": "last_name", "output": "Surname"}]
    delivery.headers = [{"name": "X-Account", "value": "42"}]
    delivery.total_timeout = 300
    delivery_save(delivery)
    leases = []
    send_one = api_runs._send_one

    def noting_the_lease(delivery, item, row):
        leases.append(DeliveryItem.objects.get(pk=item.id).lease_until)
        return send_one(delivery, item, row)

    monkeypatch.setattr(api_runs, "_send_one", noting_the_lease)
    person = make_referral(client_a, last_name="Okafor")
    outcome, _ = send(delivery, person)
    assert outcome == "delivered"
    request = http_receiver.requests[-1]
    assert json.loads(request.body) == {"Surname": "Okafor"}
    assert request.header("X-Account") == "42"
    assert leases[0] >= timezone.now() + dt.timedelta(seconds=300)


def test_a_message_without_its_delivery_is_still_sent(client_a, client_b, http_receiver):
    """Messages queued before they named their delivery: the items' deliveries are looked up,
    each sent under its own budget."""
    from deliveries.api_runs import api_items_send

    mine = make_api_delivery(client_a, http_receiver.url())
    theirs = make_api_delivery(client_b, http_receiver.url())
    ids = [DeliveryItem.objects.get(delivery=d, referral=make_referral(c)).pk
           for d, c in [(mine, client_a), (theirs, client_b), (mine, client_a)]]  # fmt: skip
    assert api_items_send(ids) == dict.fromkeys(ids, "delivered")
    assert len(http_receiver.requests) == 3


def test_a_send_says_why_it_left_an_item(client_a, client_b, http_receiver):
    """Named with the wrong delivery, not due yet, or already sent: nothing goes out, and the
    outcome says so (an item no longer open is not named)."""
    from deliveries.api_runs import api_items_send

    delivery = make_api_delivery(client_a, http_receiver.url())
    other = make_api_delivery(client_b, http_receiver.url())
    later, sent, elsewhere = (
        DeliveryItem.objects.get(delivery=delivery, referral=make_referral(client_a))
        for _ in range(3)
    )  # fmt: skip
    foreign = DeliveryItem.objects.get(delivery=other, referral=make_referral(client_b))
    DeliveryItem.objects.filter(pk=later.pk).update(
        next_attempt_at=timezone.now() + dt.timedelta(minutes=5)
    )
    assert api_item_send(sent.pk, delivery.pk) == "delivered"
    outcomes = api_items_send([later.pk, sent.pk, foreign.pk, elsewhere.pk], delivery.pk)
    assert outcomes == {later.pk: "not due", elsewhere.pk: "delivered",
                        foreign.pk: "another delivery's"}  # fmt: skip
    assert len(http_receiver.requests) == 2
    assert DeliveryItem.objects.get(pk=foreign.pk).status == "pending"


def test_a_secret_unreadable_since_the_workers_copy_pauses_and_keeps_the_claimed_items(
    client_a, http_receiver
):
    """The worker's copy of the delivery still reads; the version the claim finds does not
    (the key it was written with is gone): the claimed item is put back as it was, the
    delivery paused, the endpoint's token given back."""
    from django.db import connection

    from deliveries import api_runs

    delivery = make_api_delivery(client_a, http_receiver.url())
    assert send(delivery, make_referral(client_a))[0] == "delivered"  # the copy, warm
    item = DeliveryItem.objects.get(delivery=delivery, referral=make_referral(client_a))
    with connection.cursor() as cursor:  # raw: the field would encrypt what it is given
        cursor.execute(
            "UPDATE deliveries_delivery SET signing_secret = %s, updated_at = %s WHERE id = %s",
            ["fernet:gAAAAABnot-a-token", timezone.now(), delivery.pk],
        )
    released = []
    budget = api_runs.budget()
    release = budget.release

    def noting(delivery_id, token):
        released.append(delivery_id)
        return release(delivery_id, token)

    budget.release = noting
    try:
        assert api_item_send(item.pk, delivery.pk) == "delivery paused"
    finally:
        budget.release = release
    assert released == [delivery.pk]
    item.refresh_from_db()
    assert (item.status, item.attempts, item.lease_until) == ("pending", 0, None)
    assert Delivery.objects.defer("signing_secret").get(pk=delivery.pk).paused
    assert len(http_receiver.requests) == 1


def test_a_lone_send_holding_the_only_slot_takes_what_another_left_before_giving_it_back(
    client_a, http_receiver, monkeypatch
):
    """One referral a call (no chunk, no backlog to look for): a send that finds the slot
    taken leaves its item due; the holder sends it before giving the slot back, not a tick
    later."""
    from deliveries import api_runs
    from deliveries.budget import LocalBudget

    delivery = make_api_delivery(client_a, http_receiver.url(), max_in_flight=1)
    first, second = (DeliveryItem.objects.get(delivery=delivery, referral=make_referral(client_a))
                     for _ in range(2))  # fmt: skip
    one_slot = LocalBudget()
    monkeypatch.setattr(api_runs, "budget", lambda: one_slot)
    left: list[str] = []
    send_one = api_runs._send_one

    def meanwhile(*args):  # while the first request is out
        if not left:
            left.append(api_item_send(second.pk, delivery.pk))
        return send_one(*args)

    monkeypatch.setattr(api_runs, "_send_one", meanwhile)
    assert api_item_send(first.pk, delivery.pk) == "delivered"
    assert left == ["waiting for budget"]
    second.refresh_from_db()
    assert second.status == "delivered"
    assert [r.header("webhook-id") for r in http_receiver.requests] == [
        f"msg_{first.pk}", f"msg_{second.pk}"
    ]
    assert one_slot.free(delivery.pk, 1) == 1  # given back in the end


_SHORT_KEY = "whsec_" + base64.b64encode(b"k" * 8).decode()


@pytest.mark.parametrize(
    ("setting", "field", "message"),
    [
        ({"signing_secret": "my-shared-secret"}, "signing_secret", "whsec_"),
        ({"signing_secret": "whsec_not base64!"}, "signing_secret", "whsec_"),
        ({"signing_secret": _SHORT_KEY}, "signing_secret", "24 to 64 bytes"),
        ({"headers": [{"name": "X-Team", "value": "rokt ✓"}]}, "headers", "X-Team"),
        ({"headers": [{"name": " X-Team", "value": "rokt"}]}, "headers", "header name"),
    ],
)  # fmt: skip
def test_a_setting_the_send_cannot_use_is_refused_when_saved_through_the_api(
    manager_api, client_a, http_receiver, setting, field, message
):
    payload = {"client": client_a.slug, "name": "CRM", "kind": "api", "url": http_receiver.url(),
               "columns": COLUMNS, **setting}  # fmt: skip
    response = manager_api.post("/api/v1/deliveries/", payload, format="json")
    assert response.status_code == 400, response.json()
    assert message in " ".join(response.json()[field]), response.json()
    assert not Delivery.objects.exists()


def test_a_signing_secret_the_api_accepts_signs_every_send(manager_api, client_a, http_receiver):
    secret = "whsec_" + base64.b64encode(b"shared with the receiver!").decode()
    payload = {"client": client_a.slug, "name": "CRM", "kind": "api", "url": http_receiver.url(),
               "columns": COLUMNS, "signing_secret": secret}  # fmt: skip
    created = manager_api.post("/api/v1/deliveries/", payload, format="json")
    assert created.status_code == 201, created.json()
    assert "signing_secret" not in created.json()  # the caller's own: never echoed
    delivery = Delivery.objects.get(pk=created.json()["id"])
    assert send(delivery, make_referral(client_a))[0] == "delivered"
    Webhook(secret).verify(http_receiver.requests[0].body,
                           dict(http_receiver.requests[0].headers), json_parse=False)  # fmt: skip


def test_the_24_hour_rate_counts_referrals_delivered_not_attempts(client, manager, client_a,
                                                                  http_receiver):  # fmt: skip
    """Three referrals, two of them delivered on a retry: five attempts, three delivered. The
    rate is what an account manager asks (how many referrals got through): 3 of 3, not 60%."""
    delivery = make_api_delivery(client_a, http_receiver.url())
    people = [make_referral(client_a) for _ in range(3)]
    http_receiver.status(500)
    for person in people[:2]:
        assert send(delivery, person)[0] == "failed"
    DeliveryItem.objects.filter(delivery=delivery).update(next_attempt_at=timezone.now())
    http_receiver.respond = lambda r: (200, [], b"{}")
    send(delivery, people[2])  # and, holding the endpoint's token, the two retries due
    assert set(DeliveryItem.objects.filter(delivery=delivery).values_list("status", flat=True)) \
        == {"delivered"}
    assert Attempt.objects.filter(delivery=delivery).count() == 5
    client.force_login(manager)
    listed = client.get("/admin/deliveries/delivery/").content.decode()
    assert '<td class="field-success_24h">100% of 3</td>' in listed
    page = client.get(f"/admin/deliveries/delivery/{delivery.pk}/change/").content.decode()
    health = page[page.index('id="api-health"'):]
    assert "3 of 3 referrals delivered (100%)" in health[: health.index("</p>")]


def test_the_health_line_says_nothing_was_tried_rather_than_a_dash(client, manager, client_a,
                                                                 http_receiver):  # fmt: skip
    delivery = make_api_delivery(client_a, http_receiver.url())
    client.force_login(manager)
    page = client.get(f"/admin/deliveries/delivery/{delivery.pk}/change/").content.decode()
    health = page[page.index('id="api-health"'):]
    health = health[: health.index("</p>")]
    assert "no referral sent" in health and "-%" not in health and "- delivered" not in health


def test_a_test_send_reads_as_one_sentence_and_shows_on_the_health_line(client, manager,
                                                                       client_a, http_receiver,
                                                                       settings):  # fmt: skip
    """A refused test send says the referral was not delivered and why, once (not "Connection
    test failed: Test referral sent: ..."); a test that got through shows beside "Last
    success: never", which only real referrals move."""
    delivery = make_api_delivery(client_a, http_receiver.url())
    client.force_login(manager)
    test_url = f"/admin/deliveries/delivery/{delivery.pk}/test/"
    settings.DELIVERY_ALLOWED_NETWORKS = []  # the receiver's loopback address is refused
    response = client.post(test_url, follow=True)
    [message] = [str(m) for m in response.context["messages"]]
    assert message.startswith("Test referral not delivered (failed): ssrf_refused in ")
    assert "Connection test failed" not in message and "sent" not in message

    settings.DELIVERY_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    Delivery.objects.filter(pk=delivery.pk).update(paused_at=None, failing_since=None)
    page = client.post(test_url, follow=True).content.decode()
    health = page[page.index('id="api-health"'):]
    health = health[: health.index("</p>")]
    assert "Last success: never" in health and "last test: delivered (200)" in health
