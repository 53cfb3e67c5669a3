"""The admin's home page: a client user sees their own data; staff see every client."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from customfields.models import CustomField
from tests.factories import make_referral

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()


def test_a_client_user_lands_on_their_own_data(client, user_a, client_a, client_b):
    make_referral(client_a)
    make_referral(client_a)
    make_referral(client_b)
    CustomField.objects.create(client=client_a, name="MineOnly", kind="constant", constant="x")
    CustomField.objects.create(client=client_b, name="TheirsOnly", kind="constant", constant="y")
    client.force_login(user_a)
    page = client.get("/admin/").content.decode()
    assert "Alpha Corp" in page and "Bravo Corp" not in page
    assert response_chart(page) == ("2", "0")  # the chart counts A's referrals only
    assert "MineOnly" in page and "TheirsOnly" not in page
    assert "/admin/referrals/referral/export/" in page


def test_account_managers_see_every_clients_health(client, manager, client_a, client_b):
    make_referral(client_a)
    make_referral(client_b)
    make_referral(client_b)
    client.force_login(manager)
    response = client.get("/admin/")
    summaries = [entry["summary"] for entry in response.context["summaries"]]
    rows = {s.client.slug: (s.last_24h, s.last_7d) for s in summaries}
    assert rows == {"alpha": (1, 1), "bravo": (2, 2)}
    page = response.content.decode()
    assert 'id="client-health"' in page and response_chart(page) == ("3", "0")


def response_chart(page: str) -> tuple[str, str]:
    """(stored, delivered) totals the chart's heading shows."""
    import re

    found = re.search(r"chart-stored\">(\d+)<.*?chart-delivered\">(\d+)<", page)
    assert found, "no chart heading"
    return found.group(1), found.group(2)


def test_deliveries_show_at_home_and_on_the_dashboard(client, manager, user_a, user_b, client_a):
    from django.utils import timezone

    from deliveries.file_runs import batch_freeze
    from deliveries.models import Batch, Delivery
    from tests.factories import make_file_delivery

    healthy = make_file_delivery(client_a, name="Nightly drop")
    failing = make_file_delivery(client_a, name="Hourly drop")
    for _ in range(3):
        make_referral(client_a)
    batch = batch_freeze(healthy)
    Batch.objects.filter(pk=batch.pk).update(
        status="sent", finished_at=timezone.now(), files=[{"name": "alpha_000001.csv"}]
    )
    Delivery.objects.filter(pk=failing.pk).update(
        failing_since=timezone.now(), last_error="Connection refused"
    )
    client.force_login(user_a)
    page = client.get("/admin/").content.decode()
    assert 'id="home-deliveries"' in page
    assert "Nightly drop" in page and "Hourly drop" in page and "failing since" in page
    assert "alpha_000001.csv" in page  # the history of files
    assert response_chart(page) == ("3", "3")  # 3 stored, 3 delivered today

    client.force_login(user_b)  # another client's user sees none of it
    page = client.get("/admin/").content.decode()
    assert "Nightly drop" not in page and "alpha_000001.csv" not in page

    client.force_login(manager)
    page = client.get("/admin/").content.decode()
    assert "Nightly drop" in page and "failing since" in page
    assert response_chart(page) == ("3", "3")


def test_real_time_deliveries_count_in_the_chart_and_what_is_owed(client, user_a, client_a):
    from django.utils import timezone

    from deliveries.models import DeliveryItem
    from tests.factories import make_api_delivery

    delivery = make_api_delivery(client_a, "https://crm.example.com/hook")
    for _ in range(3):
        make_referral(client_a)
    delivered = DeliveryItem.objects.filter(delivery=delivery)[:2]
    DeliveryItem.objects.filter(pk__in=[i.pk for i in delivered]).update(
        status="delivered", delivered_at=timezone.now()
    )
    client.force_login(user_a)
    response = client.get("/admin/")
    assert response_chart(response.content.decode()) == ("3", "2")
    [health] = response.context["deliveries"]
    assert health.pending == 1  # one referral still owed in real time
