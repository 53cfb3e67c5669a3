from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response

from customfields.api.views import ModelPermissionsWithView
from deliveries.api.serializers import (
    BatchSerializer,
    ClientDeliverySerializer,
    DeliverySerializer,
    RunResultSerializer,
    TestResultSerializer,
)
from deliveries.models import Delivery
from deliveries.services import (
    ConnectionTestFailed,
    DeliveryInvalid,
    delivery_save,
    delivery_send_now,
    delivery_test_connection,
)
from referrals.tenancy import is_client_user, scope_to_user


class CanManageDeliveries(ModelPermissionsWithView):
    def has_permission(self, request, view) -> bool:
        if request.method not in ("GET", "HEAD", "OPTIONS") and is_client_user(request.user):
            return False  # client users see their deliveries; account managers run them
        return super().has_permission(request, view)


class DeliveryViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
    mixins.UpdateModelMixin, viewsets.GenericViewSet,
):  # fmt: skip
    """File deliveries (SFTP, FTPS): settings, with secrets write-only; runs, tests, batches.

    Client users list their own client's deliveries and batches, without any secret."""

    permission_classes = [CanManageDeliveries]
    filterset_fields = ["kind", "active"]

    def get_serializer_class(self):
        if is_client_user(self.request.user):
            return ClientDeliverySerializer
        return DeliverySerializer

    def get_queryset(self):
        queryset = Delivery.objects.select_related("client").order_by("client__name", "name")
        client = self.request.query_params.get("client")
        if client:
            queryset = queryset.filter(client__slug=client)
        return scope_to_user(queryset, self.request.user, client_path="client")

    def perform_create(self, serializer) -> None:
        self._save(serializer, Delivery())

    def perform_update(self, serializer) -> None:
        self._save(serializer, serializer.instance)

    def _save(self, serializer, delivery: Delivery) -> None:
        data = dict(serializer.validated_data)
        campaigns = data.pop("campaigns", None)
        for name, value in data.items():
            setattr(delivery, name, value)
        with transaction.atomic():
            try:
                delivery_save(delivery, campaigns=campaigns)
            except DeliveryInvalid as exc:
                raise ValidationError(exc.errors) from None
        serializer.instance = delivery

    @extend_schema(request=None, responses={202: RunResultSerializer, 409: RunResultSerializer})
    @action(detail=True, methods=["post"])
    def run(self, request, pk=None):
        """Queue a run now: unsent batches are resent, then what is new is sent."""
        delivery = self.get_object()
        if not delivery.active or delivery.paused:
            return Response(
                {"queued": False, "detail": "The delivery is inactive or paused."},
                status=status.HTTP_409_CONFLICT,
            )
        delivery_send_now(delivery)
        return Response({"queued": True, "detail": "A run is queued."}, status=202)

    @extend_schema(request=None, responses={200: TestResultSerializer})
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        """Log in as a run would (host key and certificate checks included), list the folder."""
        delivery = self.get_object()
        try:
            return Response({"ok": True, "detail": delivery_test_connection(delivery)})
        except ConnectionTestFailed as exc:
            return Response({"ok": False, "detail": str(exc)})

    @extend_schema(responses=BatchSerializer(many=True))
    @action(detail=True, methods=["get"])
    def batches(self, request, pk=None):
        """The delivery's batches, newest first (``?limit=`` and ``?offset=``)."""
        delivery = self.get_object()
        paginator = LimitOffsetPagination()
        paginator.default_limit = 50
        page = paginator.paginate_queryset(delivery.batches.order_by("-number"), request, self)
        return paginator.get_paginated_response(BatchSerializer(page, many=True).data)
