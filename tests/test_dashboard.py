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
    assert "(2 in all)" in page  # the chart counts A's referrals only
    assert "MineOnly" in page and "TheirsOnly" not in page
    assert "/admin/referrals/referral/export/" in page


def test_account_managers_see_every_clients_health(client, manager, client_a, client_b):
    make_referral(client_a)
    make_referral(client_b)
    make_referral(client_b)
    client.force_login(manager)
    response = client.get("/admin/")
    rows = {s.client.slug: (s.last_24h, s.last_7d) for s in response.context["summaries"]}
    assert rows == {"alpha": (1, 1), "bravo": (2, 2)}
    page = response.content.decode()
    assert 'id="client-health"' in page and "(3 in all)" in page
