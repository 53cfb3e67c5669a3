"""Custom fields in the admin: per client, on their own page (with a live preview) and inline
on the client's page (the client's admin, registered again with the inline: referrals, which
this app is built on, knows nothing of custom fields). Client users see their own client's
fields, read-only."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.http import require_POST

from customfields.models import CustomField
from customfields.preview import SampleError, custom_field_preview
from customfields.services import (
    custom_field_delete,
    custom_field_delete_problem,
    custom_field_save,
)
from customfields.validation import custom_field_errors
from referrals.admin import ClientAdmin
from referrals.admin_tenancy import ClientListFilter, TenantScopedAdmin, TenantScopedInline
from referrals.models import Client
from referrals.tenancy import scope_to_user

KIND_FIELDSETS = (
    ("Value map", ("rules", "empty_default", "no_match", "no_match_default")),
    ("Date/time format", ("date_output", "date_pattern", "time_zone")),
    ("Template", ("template",)),
    ("Constant", ("constant",)),
    ("Case", ("case",)),
    ("Hash", ("algorithm",)),
)


class CustomFieldForm(forms.ModelForm):
    """Runs the engine's validation: each problem lands on the field at fault."""

    class Meta:
        model = CustomField
        fields = (
            "client", "name", "kind", "source", "rules", "empty_default", "no_match",
            "no_match_default", "date_output", "date_pattern", "time_zone", "template",
            "constant", "case", "algorithm",
        )  # fmt: skip
        widgets = {"rules": forms.Textarea(attrs={"rows": 4, "cols": 80})}

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        candidate = self.candidate()
        others = CustomField.objects.filter(client=candidate.client)
        for field_name, messages in custom_field_errors(candidate, others=others).items():
            for message in messages:
                if field_name in self.fields:
                    self.add_error(field_name, message)
                else:
                    self.add_error(None, f"{field_name}: {message}")
        return cleaned

    def save(self, commit: bool = True) -> CustomField:
        instance = super().save(commit=False)
        return custom_field_save(instance) if commit else instance

    def candidate(self) -> CustomField:
        """The definition as typed, unsaved."""
        values = {
            name: value for name, value in self.cleaned_data.items()
            if name in {f.name for f in CustomField._meta.fields}
        }  # fmt: skip
        candidate = CustomField(**{**_current(self.instance), **values})
        candidate.pk = self.instance.pk
        if "client" not in values and self.instance.client_id:
            candidate.client = self.instance.client
        return candidate


def _current(instance: CustomField) -> dict:
    if instance.pk is None:
        return {}
    return {f.name: getattr(instance, f.name) for f in CustomField._meta.fields if f.name != "id"}


class SavesCustomFieldsUnderLock:
    """For admin pages that write custom fields. The form checks a definition unlocked, then
    the service checks it again under the client's lock; if another save won in between (a
    race: nothing of this one was saved), the page is answered again, and the form's check,
    now seeing what won, shows why on the field."""

    def changeform_view(self, request, *args, **kwargs):
        return _once_more_on_lost_race(super().changeform_view, request, *args, **kwargs)

    def delete_view(self, request, *args, **kwargs):
        return _once_more_on_lost_race(super().delete_view, request, *args, **kwargs)

    def changelist_view(self, request, *args, **kwargs):  # the "delete selected" action
        return _once_more_on_lost_race(super().changelist_view, request, *args, **kwargs)


def _once_more_on_lost_race(view, request, *args, **kwargs):
    try:
        return view(request, *args, **kwargs)
    except ValidationError:
        return view(request, *args, **kwargs)


class CustomFieldInline(TenantScopedInline):
    model = CustomField
    form = CustomFieldForm
    template = "admin/edit_inline/stacked.html"
    extra = 0
    can_delete = False  # deleted on its own page, which checks what refers to it
    show_change_link = True
    fieldsets = (
        (None, {"fields": ("name", "kind", "source")}),
        *[
            (title, {"fields": fields, "classes": ("collapse",)})
            for title, fields in KIND_FIELDSETS
        ],
    )


admin.site.unregister(Client)


@admin.register(Client)
class ClientWithCustomFieldsAdmin(SavesCustomFieldsUnderLock, ClientAdmin):
    inlines = [*ClientAdmin.inlines, CustomFieldInline]


@admin.register(CustomField)
class CustomFieldAdmin(SavesCustomFieldsUnderLock, TenantScopedAdmin):
    form = CustomFieldForm
    list_display = ("name", "client", "kind", "source", "updated_at")
    list_filter = (ClientListFilter, "kind")
    list_select_related = ("client",)
    search_fields = ("name", "source")
    autocomplete_fields = ("client",)
    change_form_template = "admin/customfields/customfield/change_form.html"
    fieldsets = (
        (None, {"fields": ("client", "name", "kind", "source")}),
        *[(title, {"fields": fields}) for title, fields in KIND_FIELDSETS],
    )

    def save_model(self, request, obj: CustomField, form, change: bool) -> None:
        custom_field_save(obj)

    def delete_model(self, request, obj: CustomField) -> None:
        custom_field_delete(obj)

    @transaction.atomic
    def delete_queryset(self, request, queryset) -> None:
        for field in queryset:  # all or none
            custom_field_delete(field)

    def get_deleted_objects(self, objs, request):
        # A field in use is "protected": Django's delete page says what uses it and deletes
        # nothing, for one field or a selection.
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        protected = list(protected) + [
            problem for obj in objs if (problem := custom_field_delete_problem(obj))
        ]
        return deleted, counts, perms_needed, protected

    def get_urls(self):
        preview = self.admin_site.admin_view(require_POST(self.preview_view))
        return [
            path("preview/", preview, name="customfields_customfield_preview"),
            *super().get_urls(),
        ]

    def preview_view(self, request: HttpRequest) -> JsonResponse:
        """Render the definition being typed, unsaved: the client's latest referrals and an
        optional sample (a JSON object of referral fields)."""
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            raise PermissionDenied
        instance = CustomField()
        if request.POST.get("id", "").isdigit():
            instance = self.get_object(request, request.POST["id"])
        form = CustomFieldForm(request.POST, instance=instance)
        form.fields["client"].queryset = scope_to_user(
            Client.objects.all(), request.user, client_path="pk"
        )
        if not form.is_valid():
            return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
        sample = None
        raw_sample = request.POST.get("sample", "").strip()
        if raw_sample:
            try:
                sample = json.loads(raw_sample)
            except ValueError as exc:
                return JsonResponse({"errors": {"sample": [{"message": f"Not JSON: {exc}"}]}},
                                    status=400)  # fmt: skip
        try:
            result = custom_field_preview(form.candidate(), sample=sample)
        except SampleError as exc:
            errors = {k: [{"message": str(m)} for m in v] for k, v in exc.errors.items()}
            return JsonResponse({"errors": errors}, status=400)
        return JsonResponse(result)
