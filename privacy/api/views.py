from __future__ import annotations

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from privacy.api.serializers import (
    ErasureByEmailSerializer,
    ErasureByExternalIdSerializer,
    ErasureReceiptSerializer,
    erasure_request_serializer,
)
from privacy.erasure import erasure_run
from privacy.models import ErasureReceipt
from referrals.api.pagination import LimitOffsetPages
from referrals.tenancy import is_account_manager


class IsAccountManager(BasePermission):
    message = "Only account managers may erase personal data or see erasures."

    def has_permission(self, request, view) -> bool:
        return is_account_manager(request.user)


class ErasureViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):  # fmt: skip
    """Erasure on request (account managers only): a person's referrals, with every copy the
    platform keeps of them, are deleted at once; the receipt keeps no personal data."""

    permission_classes = [IsAccountManager]
    serializer_class = ErasureReceiptSerializer
    pagination_class = LimitOffsetPages
    queryset = ErasureReceipt.objects.select_related("requested_by", "client").order_by(
        "-created_at", "-id"
    )

    @extend_schema(
        request=PolymorphicProxySerializer(
            component_name="ErasureRequest",
            serializers=[ErasureByEmailSerializer, ErasureByExternalIdSerializer],
            resource_type_field_name=None,
        ),
        responses={201: ErasureReceiptSerializer},
    )
    def create(self, request: Request) -> Response:
        """Erase a person: by ``email`` (every client's referrals, or ``client``'s), or by
        ``client`` (a slug) and ``external_id``. Their referrals, queued and in-flight sends,
        batch entries, logged requests and unexpired export files holding them are deleted,
        and nothing about them is sent after this answers. 201 with the receipt, also when
        nothing matched (its counts say so)."""
        given = erasure_request_serializer(request.data)
        given.is_valid(raise_exception=True)
        receipt = erasure_run(given.validated_data["person"], user=request.user,
                              source=ErasureReceipt.Source.API)  # fmt: skip
        body = ErasureReceiptSerializer(receipt).data
        return Response(body, status=status.HTTP_201_CREATED)
