"""Both roles exist on a fresh installation, and users land in the right one."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from referrals.models import ClientMembership
from referrals.roles import ACCOUNT_MANAGERS, CLIENT_USERS


@pytest.mark.django_db
def test_migrate_creates_both_roles_with_their_permissions():
    managers = Group.objects.get(name=ACCOUNT_MANAGERS)
    client_users = Group.objects.get(name=CLIENT_USERS)
    manager_perms = {f"{p.content_type.app_label}.{p.codename}" for p in managers.permissions.all()}
    assert {"referrals.ingest_referral", "referrals.add_client", "referrals.view_referral",
            "authtoken.add_token", "auth.add_user"} <= manager_perms  # fmt: skip
    assert "auth.delete_user" not in manager_perms
    client_perms = {p.codename for p in client_users.permissions.all()}
    assert client_perms == {
        "view_client", "view_campaign", "view_referral", "export_referral", "view_customfield",
        "view_delivery", "view_batch", "view_attempt",
    }


@pytest.mark.django_db
def test_a_membership_added_in_the_admin_makes_a_client_user(client, client_a):
    admin = User.objects.create_superuser("root", password="root-password-123")
    client.force_login(admin)
    response = client.post("/admin/auth/user/add/", {
        "username": "carol", "password1": "a-long-password-42", "password2": "a-long-password-42",
        "usable_password": "true",
        "client_membership-TOTAL_FORMS": "1", "client_membership-INITIAL_FORMS": "0",
        "client_membership-MIN_NUM_FORMS": "0", "client_membership-MAX_NUM_FORMS": "1",
        "client_membership-0-client": str(client_a.pk),
    })  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    carol = User.objects.get(username="carol")
    assert ClientMembership.objects.get(user=carol).client == client_a
    assert carol.is_staff
    assert carol.groups.filter(name=CLIENT_USERS).exists()


@pytest.mark.django_db
def test_an_account_manager_cannot_grant_superuser_status(client, manager, user_a):
    client.force_login(manager)
    page = client.get(f"/admin/auth/user/{user_a.pk}/change/").content.decode()
    assert 'name="is_superuser"' not in page
    assert 'name="groups"' not in page
    assert 'name="user_permissions"' not in page


@pytest.mark.django_db
def test_superusers_are_hidden_from_account_managers(client, manager):
    root = User.objects.create_superuser("root", password="root-password-123")
    client.force_login(manager)
    assert client.get(f"/admin/auth/user/{root.pk}/change/").status_code in (302, 404)
    assert "root" not in client.get("/admin/auth/user/").content.decode()


@pytest.mark.django_db
def test_an_account_manager_manages_client_users_not_other_staff(client, manager, user_a):
    from referrals.roles import account_manager_create

    colleague = account_manager_create(username="colleague", password="a-long-password-7")
    client.force_login(manager)
    listing = client.get("/admin/auth/user/").content.decode()
    assert "alice" in listing and "colleague" not in listing
    assert client.get(f"/admin/auth/user/{user_a.pk}/change/").status_code == 200
    assert client.get(f"/admin/auth/user/{manager.pk}/change/").status_code == 200
    for page in ("change/", "password/"):
        response = client.get(f"/admin/auth/user/{colleague.pk}/{page}")
        assert response.status_code in (302, 404), page
    response = client.post(f"/admin/auth/user/{colleague.pk}/password/", {
        "password1": "Taken-over-123", "password2": "Taken-over-123",
    })  # fmt: skip
    assert response.status_code in (302, 404)
    colleague.refresh_from_db()
    assert colleague.check_password("a-long-password-7")


def _user_form(username: str, **membership) -> dict:
    return {
        "username": username, "password1": "a-long-password-42",
        "password2": "a-long-password-42", "usable_password": "true",
        "client_membership-TOTAL_FORMS": "1", "client_membership-INITIAL_FORMS": "0",
        "client_membership-MIN_NUM_FORMS": "0", "client_membership-MAX_NUM_FORMS": "1",
        **{f"client_membership-0-{k}": v for k, v in membership.items()},
    }  # fmt: skip


@pytest.mark.django_db
def test_an_account_manager_creates_client_users_only(client, manager, client_a):
    client.force_login(manager)
    refused = client.post("/admin/auth/user/add/", _user_form("nobody"))
    assert refused.status_code == 200
    assert "Choose the client this user belongs to" in refused.content.decode()
    assert not User.objects.filter(username="nobody").exists()

    created = client.post("/admin/auth/user/add/", _user_form("dora", client=client_a.pk))
    assert created.status_code == 302
    dora = User.objects.get(username="dora")
    assert dora.client_membership.client == client_a and dora.is_staff
    assert client.get(created.url).status_code == 200  # lands on the new user's page
