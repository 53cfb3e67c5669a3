from __future__ import annotations

from rest_framework.permissions import BasePermission

from referrals.tenancy import is_account_manager, is_client_user


class CanIngest(BasePermission):
    """Account managers and holders of the ingest permission; never a client user."""

    message = "Only account managers or holders of the ingest permission may ingest referrals."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not user.is_authenticated or is_client_user(user):
            return False
        return is_account_manager(user) or user.has_perm("referrals.ingest_referral")


class CanViewReferrals(BasePermission):
    message = "You may not view referrals."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user.is_authenticated and user.has_perm("referrals.view_referral"))
