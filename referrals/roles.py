"""The two roles every installation has, kept in step with the apps' permissions.

Run after every ``migrate`` (post_migrate), so new models' permissions reach the roles as soon
as their migration is applied, on a fresh installation and on an upgrade alike.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser, Group, Permission
from django.db import transaction
from django.db.models import Q

from referrals.models import Client, ClientMembership

ACCOUNT_MANAGERS = "Account managers"
CLIENT_USERS = "Client users"

# Account managers run the platform's own apps, and issue API tokens.
_ACCOUNT_MANAGER_APPS = ("referrals", "customfields", "deliveries", "authtoken")
# ...and onboard client users (PlatformUserAdmin keeps superuser status and raw permissions
# out of their reach), see login lockouts and lift them (deleting the attempt unlocks),
# and see what the retention purge did.
_ACCOUNT_MANAGER_EXTRA = (
    "auth.view_user", "auth.add_user", "auth.change_user",
    "axes.view_accessattempt", "axes.delete_accessattempt",
    # Privacy, read-only in the admin: erasure receipts, and what the retention purge did.
    "privacy.view_erasurereceipt", "privacy.view_purgerun",
)  # fmt: skip
# Client users read their own client's data; scoping is enforced by referrals.tenancy.
_CLIENT_USER_PERMISSIONS = (
    "referrals.view_client",
    "referrals.view_campaign",
    "referrals.view_referral",
    "referrals.export_referral",
    "customfields.view_customfield",
    "deliveries.view_delivery",
    "deliveries.view_batch",
    "deliveries.view_attempt",
)


def ensure_roles() -> None:
    managers, _ = Group.objects.get_or_create(name=ACCOUNT_MANAGERS)
    managers.permissions.add(
        *Permission.objects.filter(content_type__app_label__in=_ACCOUNT_MANAGER_APPS),
        *_permissions(_ACCOUNT_MANAGER_EXTRA),
    )
    client_users, _ = Group.objects.get_or_create(name=CLIENT_USERS)
    client_users.permissions.set(_permissions(_CLIENT_USER_PERMISSIONS))


def _permissions(dotted: tuple[str, ...]) -> list[Permission]:
    """The permissions named, in one query (this runs for every user made); one not found is
    absent only while its app is not yet migrated."""
    wanted = Q()
    for name in dotted:
        app_label, codename = name.split(".")
        wanted |= Q(content_type__app_label=app_label, codename=codename)
    return list(Permission.objects.filter(wanted)) if dotted else []


def ensure_roles_after_migrate(sender, **kwargs) -> None:
    # post_migrate fires once per app, and each app's permissions exist only after its own
    # signal: syncing on every one (a few cheap queries) leaves the roles complete at the end.
    ensure_roles()


def role_sync(user: AbstractUser) -> None:
    """Put a user in the group their membership implies: a client user logs into the admin
    with the client-user permissions; without a membership they leave that group."""
    ensure_roles()
    group = Group.objects.get(name=CLIENT_USERS)
    if ClientMembership.objects.filter(user_id=user.pk).exists():
        user.groups.add(group)
        if not user.is_staff:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
    else:
        user.groups.remove(group)


@transaction.atomic
def client_user_create(*, client: Client, username: str, password: str, email: str = ""):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(
        username=username, password=password, email=email, is_staff=True
    )
    ClientMembership.objects.create(user=user, client=client)
    role_sync(user)
    return user


@transaction.atomic
def account_manager_create(*, username: str, password: str, email: str = ""):
    from django.contrib.auth import get_user_model

    ensure_roles()
    user = get_user_model().objects.create_user(
        username=username, password=password, email=email, is_staff=True
    )
    user.groups.add(Group.objects.get(name=ACCOUNT_MANAGERS))
    return user
