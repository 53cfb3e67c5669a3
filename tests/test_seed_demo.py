import re
from io import StringIO

import pytest
from django.core.management import call_command

from referrals.models import Campaign, Client, Referral


@pytest.mark.django_db
def test_seed_demo_creates_a_client_campaigns_referrals_and_working_logins(client):
    out = StringIO()
    call_command("seed_demo", stdout=out)
    demo = Client.objects.get(slug="acme-demo")
    assert Campaign.objects.filter(client=demo).count() == 2
    assert Referral.objects.filter(client=demo).count() == 1000
    assert Referral.objects.filter(client=demo).exclude(email="").count() == 1000
    # The example delivery is paused, and its ledger owes every demo referral.
    from deliveries.models import Delivery

    example = Delivery.objects.get(client=demo)
    assert example.paused and example.items.filter(status="file").count() == 1000

    logins = dict(re.findall(r"username '(\w+)', password '([^']+)'", out.getvalue()))
    assert set(logins) == {"manager", "acme"}
    assert client.login(username="acme", password=logins["acme"])
    page = client.get("/admin/referrals/referral/").content.decode()
    assert "1000 referrals" in page

    again = StringIO()
    call_command("seed_demo", stdout=again)  # a second run changes nothing
    assert Referral.objects.count() == 1000
    assert "exists already" in again.getvalue()
