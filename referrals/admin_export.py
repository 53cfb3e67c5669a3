"""The export page of Customer Data > Referrals: a form, then a streamed download."""

from __future__ import annotations

from django import forms
from django.contrib.admin.widgets import AdminDateWidget
from django.core.exceptions import PermissionDenied
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse

from deliveries.models import Delivery
from referrals.exports import (
    COLUMN_SETS,
    DELIVERY_COLUMN_SET,
    FORMATS,
    TIME_FIELDS,
    ExportGone,
    ExportRequest,
    export_download,
    export_start,
)
from referrals.models import Campaign, Client, ExportAudit
from referrals.tenancy import is_client_user, scope_to_user, user_client


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
        self.fields["column_set"].choices = [*COLUMN_SETS.items(), *_delivery_column_sets(user)]

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
        column_set = cleaned.get("column_set", "")
        if client and column_set.startswith(DELIVERY_COLUMN_SET):
            pk = int(column_set.removeprefix(DELIVERY_COLUMN_SET))
            if not Delivery.objects.filter(pk=pk, client=client).exists():
                self.add_error("column_set", f"Not a delivery of {client}.")
        return cleaned

    def export_request(self) -> ExportRequest:
        data = self.cleaned_data
        return ExportRequest(
            client=data["client"], format=data["format"], time_field=data["time_field"],
            start=data["start"], end=data["end"],
            campaign_ids=tuple(c.pk for c in data["campaigns"]), column_set=data["column_set"],
        )  # fmt: skip


def _delivery_column_sets(user) -> list[tuple[str, str]]:
    deliveries = scope_to_user(
        Delivery.objects.select_related("client").order_by("client__name", "name"),
        user, client_path="client",
    )  # fmt: skip
    return [
        (f"{DELIVERY_COLUMN_SET}{d.pk}", f"The column list of {d.client.name} / {d.name}")
        for d in deliveries
    ]


def export_view(model_admin, request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("referrals.export_referral"):
        raise PermissionDenied
    form = ExportForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        audit, stream = export_start(form.export_request(), user=request.user)
        if stream is None:  # large, or XLSX: a worker writes the file
            return redirect("admin:referrals_referral_export_status", audit.pk)
        response = StreamingHttpResponse(stream, content_type=FORMATS[audit.format][0])
        response["Content-Disposition"] = f'attachment; filename="{audit.file_name}"'
        return response
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Export referrals",
        "opts": model_admin.model._meta,
        "form": form,
        "media": model_admin.media + form.media,
    }
    return TemplateResponse(request, "admin/referrals/referral/export.html", context)


def _own_export(request: HttpRequest, audit_id: int) -> ExportAudit:
    """An export its author may follow and download; staff with the permission see all.
    Anything else answers 404, like an id that does not exist."""
    if not request.user.has_perm("referrals.export_referral"):
        raise PermissionDenied
    exports = scope_to_user(ExportAudit.objects.all(), request.user, client_path="client")
    if is_client_user(request.user):
        exports = exports.filter(user=request.user)
    return get_object_or_404(exports.select_related("client"), pk=audit_id)


def export_status_view(model_admin, request: HttpRequest, audit_id: int) -> HttpResponse:
    audit = _own_export(request, audit_id)
    if request.GET.get("format") == "json":
        return JsonResponse({
            "status": audit.status, "status_label": audit.get_status_display(),
            "rows": audit.rows, "total_rows": audit.total_rows, "error": audit.error,
        })  # fmt: skip
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Export in progress" if audit.status != "done" else "Export ready",
        "opts": model_admin.model._meta,
        "audit": audit,
    }
    return TemplateResponse(request, "admin/referrals/referral/export_status.html", context)


def export_download_view(model_admin, request: HttpRequest, audit_id: int) -> HttpResponse:
    audit = _own_export(request, audit_id)
    if audit.status not in (ExportAudit.Status.DONE, ExportAudit.Status.EXPIRED):
        raise Http404("The export is not ready.")
    try:
        path = export_download(audit, user=request.user)
    except ExportGone as exc:
        return HttpResponse(f"{exc} Export again to get a new file.", status=410,
                            content_type="text/plain; charset=utf-8")  # fmt: skip
    return FileResponse(path.open("rb"), as_attachment=True, filename=audit.file_name,
                        content_type=FORMATS[audit.format][0])  # fmt: skip
