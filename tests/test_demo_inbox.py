"""The demo's webhook inbox: takes what a real-time delivery sends, checks the signature as a
receiver's library would, and shows it to account managers only; off unless DEMO_INBOX."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings
from standardwebhooks.webhooks import Webhook

from deliveries.models import Attempt
from deliveries.services import delivery_rotate_signing_secret, delivery_test_connection
from deliveries.transports.http import close_pools
from demo.models import InboxMessage
from tests.factories import make_api_delivery, make_referral

pytestmark = pytest.mark.django_db
INBOX_ON = override_settings(DEMO_INBOX=True)


def post(client, delivery, body: bytes, headers: dict[str, str]):
    return client.post(
        f"/demo/inbox/{delivery.pk}/", body, content_type="application/json",
        headers=headers,
    )  # fmt: skip


def signed(secret: str, body: bytes, msg_id: str = "msg_1") -> dict[str, str]:
    """Headers signed by the public Standard Webhooks library, not the platform's code."""
    import datetime as dt

    now = dt.datetime.now(tz=dt.UTC)
    signature = Webhook(secret).sign(msg_id, now, body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature}  # fmt: skip


@INBOX_ON
def test_a_request_signed_with_the_deliverys_secret_is_accepted_and_kept(client, client_a):
    delivery = make_api_delivery(client_a, "http://127.0.0.1/")
    body = json.dumps({"id": "r-1", "email": "a@example.com"}).encode()
    response = post(client, delivery, body, signed(delivery.signing_secret, body))
    assert response.status_code == 200
    message = InboxMessage.objects.get()
    assert message.signature_valid and message.answered == 200 and not message.problem
    assert message.webhook_id == "msg_1" and json.loads(message.body)["id"] == "r-1"


@INBOX_ON
def test_a_tampered_or_foreign_or_unsigned_request_is_refused_with_the_reason(
    client, client_a
):  # fmt: skip
    delivery = make_api_delivery(client_a, "http://127.0.0.1/")
    other = make_api_delivery(client_a, "http://127.0.0.1/")
    body = b'{"id": "r-1"}'
    cases = [
        (b'{"id": "r-2"}', signed(delivery.signing_secret, body), "No signature matches"),
        (body, signed(other.signing_secret, body), "No signature matches"),
        (body, {}, "Not signed"),
        (body, {**signed(delivery.signing_secret, body), "webhook-timestamp": "1"},
         "five minutes"),
    ]  # fmt: skip
    for sent, headers, reason in cases:
        response = post(client, delivery, sent, headers)
        assert response.status_code == 401
        assert reason in response.json()["error"]
    assert not InboxMessage.objects.filter(signature_valid=True).exists()
    assert InboxMessage.objects.filter(answered=401).count() == len(cases)


@INBOX_ON
def test_during_a_rotation_the_previous_secret_is_still_accepted(client, client_a):
    delivery = make_api_delivery(client_a, "http://127.0.0.1/")
    old = delivery.signing_secret
    delivery_rotate_signing_secret(delivery)
    body = b'{"id": "r-1"}'
    assert post(client, delivery, body, signed(old, body)).status_code == 200


def test_the_inbox_is_off_unless_demo_inbox_is_set(client, client_a, manager):
    delivery = make_api_delivery(client_a, "http://127.0.0.1/")
    body = b"{}"
    assert post(client, delivery, body, signed(delivery.signing_secret, body)).status_code == 404
    assert not InboxMessage.objects.exists()
    client.force_login(manager)
    assert client.get("/admin/demo/inboxmessage/").status_code == 403
    assert "inboxmessage" not in client.get("/admin/").content.decode()


@INBOX_ON
def test_account_managers_see_what_arrived_and_client_users_do_not(
    client, client_a, manager, user_a
):  # fmt: skip
    delivery = make_api_delivery(client_a, "http://127.0.0.1/")
    body = b'{"email": "shown@example.com"}'
    post(client, delivery, body, signed(delivery.signing_secret, body))
    message = InboxMessage.objects.get()

    client.force_login(manager)
    listing = client.get("/admin/demo/inboxmessage/").content.decode()
    assert "msg_1" in listing and "shown@example.com" in listing
    detail = client.get(f"/admin/demo/inboxmessage/{message.pk}/change/").content.decode()
    assert "webhook-signature" in detail and "shown@example.com" in detail

    client.force_login(user_a)
    for url in ("/admin/demo/inboxmessage/", f"/admin/demo/inboxmessage/{message.pk}/change/"):
        assert client.get(url).status_code == 403
    assert "inboxmessage" not in client.get("/admin/").content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_test_referral_sent_by_the_platform_arrives_signed_through_the_ssrf_guard(
    live_server, client_a, settings
):  # fmt: skip
    """The demo's set-up end to end: loopback allowed for 127.0.0.1 only, the platform's own
    send (same request, same guard) to the inbox served by a real server."""
    settings.DEMO_INBOX = True
    settings.DELIVERY_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    make_referral(client_a, external_id="sent-1")
    delivery = make_api_delivery(client_a, "http://127.0.0.1/")
    delivery.url = f"{live_server.url}/demo/inbox/{delivery.pk}/"
    delivery.save(update_fields=["url"])

    try:
        assert "200" in delivery_test_connection(delivery)
    finally:
        # The platform keeps its connection to the inbox alive, and so the live server's
        # request thread and its database session: closed before the database is dropped.
        close_pools()
    message = InboxMessage.objects.get()
    assert message.signature_valid and '"sent-1"' in message.body
    assert Attempt.objects.get(delivery=delivery, test=True).outcome == "delivered"
