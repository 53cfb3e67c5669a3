from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import DjangoModelPermissions
from rest_framework.request import Request
from rest_framework.response import Response

from customfields.api.filters import CustomFieldFilter
from customfields.api.serializers import (
    CustomFieldSerializer,
    PreviewRequestSerializer,
    PreviewResponseSerializer,
)
from customfields.models import CustomField
from customfields.preview import SampleError, custom_field_preview
from customfields.services import CustomFieldConflict, custom_field_delete
from referrals.tenancy import is_client_user, scope_to_user
from rokt_platform.api_errors import Conflict

# Answers that depend on the client's other fields, not on the request alone.
NAME_TAKEN_OR_IN_USE = OpenApiResponse(
    description="The name is taken, or the field is in use (a delivery or another custom field "
    "names it) and cannot be renamed, or the definition closes a cycle through other fields."
)
IN_USE = OpenApiResponse(
    description="The field is in use: a delivery or another custom field names it."
)


class ModelPermissionsWithView(DjangoModelPermissions):
    """Reading needs the view permission too (DRF's default lets any user read)."""

    perms_map = {**DjangoModelPermissions.perms_map, "GET": ["%(app_label)s.view_%(model_name)s"]}


class CanEditCustomFields(ModelPermissionsWithView):
    def has_permission(self, request, view) -> bool:
        if request.method not in ("GET", "HEAD", "OPTIONS") and is_client_user(request.user):
            return False  # client users read their client's custom fields, never change them
        return super().has_permission(request, view)


@extend_schema_view(
    create=extend_schema(responses={201: CustomFieldSerializer, 409: NAME_TAKEN_OR_IN_USE}),
    update=extend_schema(responses={200: CustomFieldSerializer, 409: NAME_TAKEN_OR_IN_USE}),
    partial_update=extend_schema(
        responses={200: CustomFieldSerializer, 409: NAME_TAKEN_OR_IN_USE},
        description="Change some settings. The result must be a valid definition: a change "
        "that is sound but leaves the stored definition invalid (e.g. a kind whose own "
        "settings are not set) answers 409.",
    ),
    destroy=extend_schema(responses={204: None, 409: IN_USE}),
)
class CustomFieldViewSet(viewsets.ModelViewSet):
    """A client's custom fields. Definitions are validated on every save: a bad one is
    refused with a message on each offending field, and nothing is saved."""

    serializer_class = CustomFieldSerializer
    permission_classes = [CanEditCustomFields]
    filterset_class = CustomFieldFilter

    def get_queryset(self):
        queryset = CustomField.objects.select_related("client").order_by("client__name", "name")
        return scope_to_user(queryset, self.request.user, client_path="client")

    def perform_destroy(self, instance: CustomField) -> None:
        try:
            custom_field_delete(instance)
        except CustomFieldConflict as exc:
            raise Conflict(" ".join(exc.messages)) from None

    @extend_schema(
        request=PreviewRequestSerializer,
        responses={200: PreviewResponseSerializer, 409: NAME_TAKEN_OR_IN_USE},
    )
    @action(detail=False, methods=["post"], permission_classes=[ModelPermissionsWithView])
    def preview(self, request: Request) -> Response:
        """Render an unsaved definition for the client's latest referrals and a sample."""
        serializer = PreviewRequestSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        sample = data.pop("sample", None)
        try:
            result = custom_field_preview(CustomField(**data), sample=sample)
        except SampleError as exc:
            return Response(exc.errors, status=status.HTTP_400_BAD_REQUEST)
        return Response(result)
