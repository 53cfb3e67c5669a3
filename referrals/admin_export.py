"""The export page of Customer Data > Referrals: a form, then a streamed download."""

from __future__ import annotations

from django import forms
from django.contrib.admin.widgets import AdminDateWidget
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse

from referrals.exports import (
    COLUMN_SETS,
    FORMATS,
    TIME_FIELDS,
    ExportRequest,
    export_file_name,
    export_stream,
)
from referrals.models import Campaign, Client
from referrals.tenancy import scope_to_user, user_client


class ExportForm(forms.Form):
    client = forms.ModelChoiceField(queryset=Client.objects.none())
    time_field = forms.ChoiceField(
        label="Dates are when the referral was", choices=TIME_FIELDS.items(), initial="created_at"
    )
    start = forms.DateField(required=False, widget=AdminDateWidget, label="From (day included)")
    end = forms.DateField(required=False, widget=AdminDateWidget, label="To (day included)")
    campaigns = forms.ModelMultipleChoiceField(
        queryset=Campaign.objects.none(), required=False,
        help_text="None chosen: every campaign.",
    )  # fmt: skip
    column_set = forms.ChoiceField(label="Columns", choices=COLUMN_SETS.items())
    format = forms.ChoiceField(choices=[(key, key.upper()) for key in FORMATS])

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        clients = scope_to_user(Client.objects.all(), user, client_path="pk")
        self.fields["client"].queryset = clients
        own = user_client(user)
        if own is not None:  # a client user exports their own client, whatever is sent
            self.fields["client"].initial = own.pk
            self.fields["client"].widget = forms.HiddenInput()
        self.fields["campaigns"].queryset = scope_to_user(
            Campaign.objects.select_related("client"), user, client_path="client"
        )

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end and end < start:
            self.add_error("end", "The end is before the start.")
        client = cleaned.get("client")
        strangers = [c for c in cleaned.get("campaigns", []) if client and c.client_id != client.pk]
        if strangers:
            names = ", ".join(str(c) for c in strangers)
            self.add_error("campaigns", f"Not campaigns of {client}: {names}.")
        return cleaned

    def export_request(self) -> ExportRequest:
        data = self.cleaned_data
        return ExportRequest(
            client=data["client"], format=data["format"], time_field=data["time_field"],
            start=data["start"], end=data["end"],
            campaign_ids=tuple(c.pk for c in data["campaigns"]), column_set=data["column_set"],
        )  # fmt: skip


def export_view(model_admin, request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("referrals.export_referral"):
        raise PermissionDenied
    form = ExportForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        export = form.export_request()
        content_type, _ = FORMATS[export.format]
        response = StreamingHttpResponse(
            export_stream(export, user=request.user), content_type=content_type
        )
        response["Content-Disposition"] = f'attachment; filename="{export_file_name(export)}"'
        return response
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Export referrals",
        "opts": model_admin.model._meta,
        "form": form,
        "media": model_admin.media + form.media,
    }
    return TemplateResponse(request, "admin/referrals/referral/export.html", context)
