from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import UnsupportedMediaType, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from referrals.api.filters import ReferralFilter
from referrals.api.pagination import ReferralCursorPagination
from referrals.api.parsers import BoundedJSONParser, chunked_body
from referrals.api.permissions import CanIngest, CanViewReferrals
from referrals.api.serializers import (
    IngestResponseSerializer,
    ReferralIngestSerializer,
    ReferralSerializer,
)
from referrals.models import Referral
from referrals.services import referrals_ingest
from referrals.tenancy import scope_to_user


class ReferralViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Referrals: ingest (POST) and read back (GET), scoped to the caller's client."""

    serializer_class = ReferralSerializer
    filterset_class = ReferralFilter
    pagination_class = ReferralCursorPagination
    parser_classes = [BoundedJSONParser]

    def get_permissions(self):
        return [CanIngest()] if self.action == "create" else [CanViewReferrals()]

    def get_queryset(self):
        queryset = Referral.objects.select_related("client", "campaign")
        return scope_to_user(queryset, self.request.user, client_path="client")

    @extend_schema(
        request=PolymorphicProxySerializer(
            component_name="ReferralIngestRequest",
            serializers=[ReferralIngestSerializer, ReferralIngestSerializer(many=True)],
            resource_type_field_name=None,  # one object or a list of them: oneOf
            many=False,
        ),
        responses={
            201: IngestResponseSerializer,
            200: OpenApiResponse(IngestResponseSerializer, "Every record was a duplicate."),
            207: OpenApiResponse(IngestResponseSerializer, "Some records were invalid."),
            400: OpenApiResponse(IngestResponseSerializer, "No record was stored."),
            411: OpenApiResponse(description="No Content-Length, and no de-chunked body."),
            413: OpenApiResponse(description="The body is larger than the limit."),
            415: OpenApiResponse(description="The body is not application/json."),
        },
        description=(
            "Store one referral (a JSON object) or up to INGEST_MAX_RECORDS (a list). Each "
            "record is stored whole or reported with its errors; duplicates of a stored "
            "(client, external_id) change nothing. Unknown campaigns are created."
        ),
    )
    def create(self, request: Request) -> Response:
        stream = chunked_body(request)
        if stream is None and request.META.get("CONTENT_LENGTH", "") in ("", "0"):
            raise ValidationError("The request body is empty: send a JSON object or a list.")
        payload = request.data if stream is None else self._parse_chunked(request, stream)
        single = isinstance(payload, dict)
        if not single and not isinstance(payload, list):
            raise ValidationError("The body must be a JSON object or a list of objects.")
        records = [payload] if single else payload
        if not records:
            raise ValidationError("The list holds no records.")
        limit = settings.INGEST_MAX_RECORDS
        if len(records) > limit:
            raise ValidationError(f"Too many records: {len(records)}; at most {limit}.")
        outcomes = referrals_ingest(records=records)
        counts = {status_: 0 for status_ in ("created", "duplicate", "invalid")}
        for outcome in outcomes:
            counts[outcome.status] += 1
        body = {
            "created": counts["created"],
            "duplicates": counts["duplicate"],
            "invalid": counts["invalid"],
            "results": [outcome.as_dict() for outcome in outcomes],
        }
        return Response(body, status=_ingest_status(counts))

    def _parse_chunked(self, request: Request, stream):
        """Parse a chunked body, which DRF would take for an empty one."""
        parser = self.get_content_negotiator().select_parser(request, self.get_parsers())
        if parser is None:
            raise UnsupportedMediaType(request.content_type)
        return parser.parse(stream, request.content_type, request.parser_context)


def _ingest_status(counts: dict[str, int]) -> int:
    if counts["invalid"]:
        stored_any = counts["created"] or counts["duplicate"]
        return status.HTTP_207_MULTI_STATUS if stored_any else status.HTTP_400_BAD_REQUEST
    return status.HTTP_201_CREATED if counts["created"] else status.HTTP_200_OK
