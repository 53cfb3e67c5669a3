from __future__ import annotations

from django.db import IntegrityError, transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from customfields.api.views import ModelPermissionsWithView
from deliveries.api.filters import DeliveryFilter
from deliveries.api.serializers import (
    AttemptSerializer,
    BatchSerializer,
    ClientDeliverySerializer,
    DeliverySerializer,
    PauseSerializer,
    RangeSerializer,
    RedeliveryResultSerializer,
    ReplayResultSerializer,
    ReplaySerializer,
    RotatedSecretSerializer,
    RunResultSerializer,
    TestResultSerializer,
    refuse_unless_valid,
)
from deliveries.channels import channel_for
from deliveries.channels.base import ConnectionTestFailed
from deliveries.models import Delivery
from deliveries.pausing import delivery_pause
from deliveries.replays import replay_not_delivered, replay_range, replay_referral
from deliveries.services import (
    DeliveryInvalid,
    delivery_redeliver_range,
    delivery_resume_now,
    delivery_rotate_signing_secret,
    delivery_save,
    delivery_send_now,
    delivery_test_connection,
)
from deliveries.validation import NAME_TAKEN
from referrals.api.pagination import LimitOffsetPages
from referrals.api.query import INT64_MAX, query_integer
from referrals.tenancy import is_client_user, scope_to_user
from rokt_platform.api_errors import Conflict

REAL_TIME_ONLY = "Only real-time deliveries {}; this one sends files."


class CanManageDeliveries(ModelPermissionsWithView):
    def has_permission(self, request, view) -> bool:
        if request.method not in ("GET", "HEAD", "OPTIONS") and is_client_user(request.user):
            return False  # client users see their deliveries; account managers run them
        return super().has_permission(request, view)


@extend_schema_view(
    create=extend_schema(request=DeliverySerializer,
                         responses={201: DeliverySerializer, 409: None}),
    update=extend_schema(request=DeliverySerializer,
                         responses={200: DeliverySerializer, 409: None}),
    partial_update=extend_schema(request=DeliverySerializer,
                                 responses={200: DeliverySerializer, 409: None}),
)  # fmt: skip
class DeliveryViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
    mixins.UpdateModelMixin, viewsets.GenericViewSet,
):  # fmt: skip
    """File deliveries (SFTP, FTPS): settings, with secrets write-only; runs, tests, batches.

    Client users list their own client's deliveries and batches, without any secret."""

    permission_classes = [CanManageDeliveries]
    filterset_class = DeliveryFilter

    def get_serializer_class(self):
        if is_client_user(self.request.user):
            return ClientDeliverySerializer
        return DeliverySerializer

    def get_queryset(self):
        queryset = Delivery.objects.select_related("client").order_by("client__name", "name")
        return scope_to_user(queryset, self.request.user, client_path="client")

    def create(self, request, *args, **kwargs):
        return self._with_made_secret(super().create(request, *args, **kwargs))

    def update(self, request, *args, **kwargs):
        return self._with_made_secret(super().update(request, *args, **kwargs))

    def _with_made_secret(self, response: Response) -> Response:
        """A signing secret the save made (a new real-time delivery, one turned real-time, a
        secret sent blank to remove it) is shown this once, for the receiver to verify with;
        one the caller sent is never echoed."""
        made = getattr(self, "_made_secret", "")
        if made:
            response.data["signing_secret"] = made
        return response

    def perform_create(self, serializer) -> None:
        self._save(serializer, Delivery())

    def perform_update(self, serializer) -> None:
        self._save(serializer, serializer.instance)

    def _save(self, serializer, delivery: Delivery) -> None:
        data = dict(serializer.validated_data)
        campaigns = data.pop("campaigns", None)
        for name, value in data.items():
            setattr(delivery, name, value)
        before = delivery.signing_secret
        try:
            with transaction.atomic():
                delivery_save(delivery, campaigns=campaigns)
        except DeliveryInvalid as exc:  # a concurrent save changed what was checked
            refuse_unless_valid(exc.errors)
        except IntegrityError:  # a concurrent save took the name first
            raise Conflict({"name": [NAME_TAKEN]}) from None
        self._made_secret = delivery.signing_secret if delivery.signing_secret != before else ""
        serializer.instance = delivery

    @extend_schema(request=None, responses={202: RunResultSerializer, 409: RunResultSerializer})
    @action(detail=True, methods=["post"])
    def run(self, request, pk=None):
        """Queue a run now: unsent batches are resent, then what is new is sent."""
        delivery = self.get_object()
        batch = channel_for(delivery.kind).batch
        if not delivery.active or delivery.paused or not batch:
            detail = (
                "The delivery is inactive or paused."
                if batch
                else "Real-time deliveries send as referrals arrive; use replay."
            )
            return Response({"queued": False, "detail": detail}, status=status.HTTP_409_CONFLICT)
        delivery_send_now(delivery)
        return Response({"queued": True, "detail": "A run is queued."}, status=202)

    @extend_schema(request=None, responses={200: TestResultSerializer})
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        """Files: log in as a run would (host key and certificate checks included) and list
        the folder. Real-time: send a test referral under the same rules as live delivery."""
        delivery = self.get_object()
        try:
            return Response({"ok": True, "detail": delivery_test_connection(delivery)})
        except ConnectionTestFailed as exc:
            return Response({"ok": False, "detail": str(exc)})

    @extend_schema(
        responses=AttemptSerializer(many=True),
        parameters=[
            OpenApiParameter(
                "referral",
                {"type": "integer", "minimum": 1, "maximum": INT64_MAX},
                description="One referral's attempts (its id).",
            )
        ],
    )
    @action(detail=True, methods=["get"], pagination_class=LimitOffsetPages, filter_backends=[])
    def attempts(self, request, pk=None):
        """The delivery's HTTP attempts, newest first (``?referral=<id>`` for one referral)."""
        delivery = self.get_object()
        attempts = delivery.attempts.order_by("-started_at", "-id")
        referral = query_integer(request, "referral", 1, INT64_MAX)
        if referral is not None:
            attempts = attempts.filter(referral_id=referral)
        page = self.paginate_queryset(attempts)
        return self.get_paginated_response(AttemptSerializer(page, many=True).data)

    @extend_schema(request=ReplaySerializer, responses={200: ReplayResultSerializer, 409: None})
    @action(detail=True, methods=["post"])
    def replay(self, request, pk=None):
        """Send again: one referral, everything not delivered, or a time range."""
        delivery = self.get_object()
        serializer = ReplaySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if channel_for(delivery.kind).batch:
            raise Conflict(
                REAL_TIME_ONLY.format("replay referrals")
                + " File deliveries redeliver a time range as a batch (POST .../redeliver/)."
            )
        data = serializer.validated_data
        if data.get("referral"):
            count = replay_referral(delivery, data["referral"])
        elif data.get("not_delivered"):
            count = replay_not_delivered(delivery)
        else:
            count = replay_range(delivery, data["start"], data["end"])
        return Response({"replayed": count})

    @extend_schema(request=PauseSerializer, responses=DeliverySerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        """Pause: nothing is sent, what arrives is still recorded and goes out on resume."""
        delivery = self.get_object()
        serializer = PauseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reason = serializer.validated_data.get("reason") or ""
        delivery_pause(delivery, reason or f"paused by {request.user.get_username()}")
        return Response(self.get_serializer(delivery).data)

    @extend_schema(request=None, responses=DeliverySerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Resume: what is owed is sent now (files: a run is queued)."""
        delivery = self.get_object()
        delivery_resume_now(delivery)
        return Response(self.get_serializer(delivery).data)

    @extend_schema(request=None, responses={200: RotatedSecretSerializer, 409: None})
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, pk=None):
        """A new signing secret, returned this once; the previous one keeps signing too for
        24 hours, so the receiver switches over without refusing a request."""
        delivery = self.get_object()
        if "signing_secret" not in channel_for(delivery.kind).secrets:
            raise Conflict(REAL_TIME_ONLY.format("sign their requests"))
        delivery_rotate_signing_secret(delivery)
        return Response({"signing_secret": delivery.signing_secret,
                         "previous_secret_until": delivery.previous_secret_until})  # fmt: skip

    @extend_schema(request=RangeSerializer, responses=RedeliveryResultSerializer)
    @action(detail=True, methods=["post"])
    def redeliver(self, request, pk=None):
        """Send again the referrals stored in a time range (``start`` included, ``end`` not):
        real time, each again under its ``webhook-id``; files, one redelivery batch."""
        delivery = self.get_object()
        serializer = RangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        done = delivery_redeliver_range(
            delivery, **serializer.validated_data, requested_by=request.user.get_username()
        )
        batch = done.batch.number if done.batch is not None else None
        return Response({"referrals": done.referrals, "batch": batch})

    @extend_schema(request=None, responses=BatchSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=LimitOffsetPages, filter_backends=[])
    def batches(self, request, pk=None):
        """The delivery's batches, newest first (``?limit=`` and ``?offset=``)."""
        delivery = self.get_object()
        page = self.paginate_queryset(delivery.batches.order_by("-number"))
        return self.get_paginated_response(BatchSerializer(page, many=True).data)
