import datetime as dt
import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from customfields.models import CustomField
from deliveries.models import Delivery
from deliveries.signing import signing_secret_valid
from exports.services import ExportRequest, export_start
from referrals.models import Campaign, Client, ExportAudit, Referral
from referrals.selectors import referrals_per_day

pytestmark = pytest.mark.django_db
User = get_user_model()


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def logins(output: str) -> dict[str, str]:
    return dict(re.findall(r"username '(\w+)', password '([^']+)'", output))


def test_seed_demo_creates_a_client_campaigns_referrals_and_working_logins(client):
    out = seed()
    demo = Client.objects.get(slug="acme-demo")
    assert Campaign.objects.filter(client=demo).count() == 2
    assert Referral.objects.filter(client=demo).count() == 1000
    assert Referral.objects.filter(client=demo).exclude(email="").count() == 1000

    passwords = logins(out)
    assert set(passwords) == {"manager", "acme"}
    assert client.login(username="acme", password=passwords["acme"])
    page = client.get("/admin/referrals/referral/").content.decode()
    assert "1000 referrals" in page

    again = seed()  # a second run changes nothing
    assert Referral.objects.count() == 1000
    assert "exists already" in again


def test_the_first_login_sees_no_alert_and_the_sftp_example_is_an_inactive_template(client):
    passwords = logins(seed())
    template = Delivery.objects.get(kind="sftp")
    assert "template" in template.name and not template.active
    assert not template.items.exists()  # it owes nothing, so nothing piles up or alerts

    assert client.login(username="manager", password=passwords["manager"])
    page = client.get("/admin/").content.decode()
    assert "failing-deliveries" not in page and "need attention" not in page


def test_the_inbox_delivery_is_real_time_signed_and_sends_to_the_demo_inbox(monkeypatch):
    monkeypatch.setenv("WEB_BIND", "0.0.0.0:8123")
    out = seed()
    inbox = Delivery.objects.get(kind="api")
    assert inbox.active and not inbox.paused_at
    assert inbox.url == f"http://127.0.0.1:8123/demo/inbox/{inbox.pk}/"
    assert signing_secret_valid(inbox.signing_secret)
    assert inbox.url in out
    # The history is not sent again: the delivery owes only what is stored from now on.
    assert not inbox.items.exists()

    monkeypatch.setenv("WEB_BIND", "127.0.0.1:9000")
    seed()  # a later run on another port points the delivery at it
    inbox.refresh_from_db()
    assert inbox.url == f"http://127.0.0.1:9000/demo/inbox/{inbox.pk}/"


def test_referrals_are_spread_over_the_last_thirty_days_for_the_chart():
    seed()
    days = referrals_per_day(client=Client.objects.get(slug="acme-demo"))
    # Opt-ins go back 30 days, so the first hours fall just before the chart's 30 days.
    assert sum(d.count for d in days) >= 950
    assert sum(1 for d in days if d.count) >= 28
    assert max(d.count for d in days) < 100
    oldest = Referral.objects.order_by("created_at").first().created_at
    assert timezone.now() - oldest <= dt.timedelta(days=30, minutes=1)


def test_custom_fields_of_several_kinds_feed_the_inbox_delivery_and_its_export_columns():
    seed()
    demo = Client.objects.get(slug="acme-demo")
    kinds = set(CustomField.objects.filter(client=demo).values_list("kind", flat=True))
    assert kinds == {"value_map", "template", "datetime", "hash", "case", "constant"}
    inbox = Delivery.objects.get(kind="api")
    names = set(CustomField.objects.filter(client=demo).values_list("name", flat=True))
    assert names <= {column["source"] for column in inbox.columns}

    request = ExportRequest(client=demo, column_set=f"delivery:{inbox.pk}")
    manager = _user("manager")
    _, chunks = export_start(request, user=manager)
    text = b"".join(chunks).decode("utf-8-sig")
    header, first = text.splitlines()[:2]
    assert header == "id,name,email,email_hash,gender,city,opted_in,source"
    assert first.endswith(",Rokt demo") and re.search(r",(Male|Female|Other|Unknown),", first)


def test_the_client_user_has_an_export_to_look_at(client):
    passwords = logins(seed())
    acme = _user("acme")
    export = ExportAudit.objects.get(user=acme)
    assert export.rows > 0 and export.completed_at is not None
    assert client.login(username="acme", password=passwords["acme"])
    assert f"CSV, {export.rows} rows" in client.get("/admin/").content.decode()


def test_reset_logins_prints_new_passwords_that_work_and_retires_the_old(client):
    first = logins(seed())
    later = seed()
    assert "--reset-logins" in later and not logins(later)

    reset = logins(seed("--reset-logins"))
    assert set(reset) == {"manager", "acme"} and reset != first
    assert client.login(username="acme", password=reset["acme"])
    assert client.login(username="manager", password=reset["manager"])
    assert not client.login(username="acme", password=first["acme"])
    assert Referral.objects.count() == 1000


def _user(username: str):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username=username)


def test_the_manager_sets_up_two_factor_at_the_first_login_and_reset_logins_forgets_it(client):
    out = seed()
    assert "authenticator app" in out  # said under the manager's login, not the client user's
    manager_line = next(line for line in out.splitlines() if "username 'manager'" in line)
    assert "authenticator app" in out.split(manager_line, 1)[1].splitlines()[1]
    response = client.post(
        "/admin/login/", {"username": "manager", "password": logins(out)["manager"]}
    )
    assert response.url == "/admin/two-factor/enrol/"

    TOTPDevice.objects.create(user=User.objects.get(username="manager"), confirmed=True)
    seed("--reset-logins")
    assert not TOTPDevice.objects.exists()
