"""Who may see which client's data.

A user with a ``ClientMembership`` is a client user, confined to that client everywhere; a user
without one is staff (an account manager), limited only by model permissions. Every admin page,
API view and export narrows its rows with ``scope_to_user`` so the rule lives in one place.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from referrals.models import Client, ClientMembership

_CACHE_ATTR = "_tenant_client_cache"


def user_client(user: AbstractBaseUser | AnonymousUser) -> Client | None:
    """The client a client user belongs to, or ``None`` for staff and anonymous users."""
    if not user.is_authenticated:
        return None
    if not hasattr(user, _CACHE_ATTR):
        membership = (
            ClientMembership.objects.select_related("client").filter(user_id=user.pk).first()
        )
        setattr(user, _CACHE_ATTR, membership.client if membership else None)
    return getattr(user, _CACHE_ATTR)


def is_client_user(user: AbstractBaseUser | AnonymousUser) -> bool:
    return user_client(user) is not None


def is_account_manager(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Staff: logged into the admin and not confined to a client."""
    return bool(user.is_authenticated and user.is_staff and not is_client_user(user))


def scope_to_user(queryset: QuerySet, user: AbstractBaseUser, *, client_path: str) -> QuerySet:
    """Narrow ``queryset`` to what ``user`` may see.

    ``client_path`` is the lookup from the model to its client (``"client"``, ``"pk"`` for
    Client itself). Anonymous users see nothing.
    """
    if not user.is_authenticated:
        return queryset.none()
    client = user_client(user)
    if client is None:
        return queryset
    lookup = "pk" if client_path == "pk" else f"{client_path}_id"
    return queryset.filter(**{lookup: client.pk})
