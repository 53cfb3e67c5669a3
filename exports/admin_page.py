"""The export page of Customer Data > Referrals: django-import-export's Export button, URL,
page and form, with the platform's export underneath.

django-import-export builds the whole file in memory (3.5 GB for 1M referrals), so its
``export_data`` never runs here: a valid form becomes an ``ExportRequest`` for
``exports.services``, which streams the file or hands it to a worker (a progress page, then a
download).
"""

from __future__ import annotations

from functools import partial

from django import forms
from django.contrib.admin.widgets import AdminDateWidget
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    QueryDict,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path
from import_export.admin import ExportMixin
from import_export.formats.base_formats import CSV, JSON, XLSX
from import_export.forms import ExportForm

from customfields.validation import columns_problem
from deliveries.models import Delivery
from exports.services import (
    COLUMN_SETS,
    DELIVERY_COLUMN_SET,
    FORMATS,
    TIME_FIELDS,
    ExportGone,
    ExportRequest,
    export_columns,
    export_download,
    export_start,
    utc_text,
)
from referrals.admin_tenancy import id_from_param
from referrals.models import Campaign, Client, ExportAudit
from referrals.tenancy import is_client_user, scope_to_user, user_client


class ReferralExportForm(ExportForm):
    """import-export's export form (its ``resource`` and ``format`` fields) with the platform's
    choices. ``format`` is keyed by file extension, the keys of ``exports.services.FORMATS``."""

    # A selection of rows is not something exports.services takes: the filters say what goes.
    export_items = None
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
    search = forms.CharField(
        required=False, max_length=200, label="Search",
        help_text="As the referral list's search: exact external id, email, first or last "
                  "name (any case).",
    )  # fmt: skip
    column_set = forms.ChoiceField(label="Columns", choices=COLUMN_SETS.items())
    bom = forms.BooleanField(
        required=False, initial=True, label="UTF-8 BOM",
        help_text="CSV only. Excel on Windows needs it to read accents (Zoë) right; leave it "
                  "out for programs that do not expect it.",
    )  # fmt: skip
    field_order = [
        "client", "time_field", "start", "end", "campaigns", "search", "column_set", "format",
        "bom",
    ]  # fmt: skip

    def __init__(self, formats, resources, *, user, **kwargs) -> None:
        super().__init__(formats, resources, **kwargs)
        # import-export numbers the formats and starts with a blank; a name keeps the posted
        # value readable and CSV chosen by default.
        self.fields["format"].choices = [
            (f().get_extension(), f().get_title().upper()) for f in formats
        ]
        self.fields["client"].queryset = scope_to_user(Client.objects.all(), user, client_path="pk")
        own = user_client(user)
        if own is not None:  # a client user exports their own client, whatever is sent
            self.initial["client"] = own.pk
            self.fields["client"].disabled = True
            self.fields["client"].widget = forms.HiddenInput()
        elif "client" not in self.initial:  # staff with a single client to choose: chosen
            only = list(self.fields["client"].queryset.values_list("pk", flat=True)[:2])
            if len(only) == 1:
                self.initial["client"] = only[0]
        self.fields["campaigns"].queryset = scope_to_user(
            Campaign.objects.select_related("client"), user, client_path="client"
        )
        if own is None:  # campaigns of several clients: say whose each is
            self.fields["campaigns"].label_from_instance = _campaign_with_client
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
        if client and not self.errors:
            # Said here, not as a broken download: a custom field stored before its checks
            # existed (or edited in the database) may no longer compute.
            problem = columns_problem(client=client, columns=export_columns(self.export_request()))
            if problem:
                self.add_error("column_set", f"{problem} Correct it, then export again.")
        return cleaned

    def export_request(self) -> ExportRequest:
        data = self.cleaned_data
        return ExportRequest(
            client=data["client"], format=data["format"], time_field=data["time_field"],
            start=data["start"], end=data["end"],
            campaign_ids=tuple(c.pk for c in data["campaigns"]), column_set=data["column_set"],
            search=data["search"], bom=data["bom"] and data["format"] == "csv",
        )  # fmt: skip


def _campaign_with_client(campaign: Campaign) -> str:
    return f"{campaign.client.name}: {campaign}"


def _delivery_column_sets(user) -> list[tuple[str, str]]:
    deliveries = scope_to_user(
        Delivery.objects.select_related("client").order_by("client__name", "name"),
        user, client_path="client",
    )  # fmt: skip
    return [
        (f"{DELIVERY_COLUMN_SET}{d.pk}", f"The column list of {d.client.name} / {d.name}")
        for d in deliveries
    ]


class ReferralExportMixin(ExportMixin):
    """django-import-export's export on a referral admin: its Export button on the list, its
    ``<app>_<model>_export`` URL and page, the form above; the file comes from
    ``exports.services``, never from import-export's in-memory ``export_data``."""

    export_form_class = ReferralExportForm
    export_template_name = "admin/referrals/referral/export.html"
    # Read by get_export_formats(); mapped onto exports.services.FORMATS by extension.
    export_formats = [CSV, XLSX, JSON]

    def has_export_permission(self, request: HttpRequest) -> bool:
        # import-export lets every admin user export unless IMPORT_EXPORT_EXPORT_PERMISSION_CODE
        # is set; referrals are personal data, so "export_referral" is asked for regardless.
        codename = get_permission_codename("export", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    def get_urls(self):
        def view(function):
            return self.admin_site.admin_view(partial(function, self))

        return [
            path("export/<int:audit_id>/", view(export_status_view),
                 name="referrals_referral_export_status"),
            path("export/<int:audit_id>/download/", view(export_download_view),
                 name="referrals_referral_export_download"),
            *super().get_urls(),  # import-export's "export/", then the admin's own
        ]  # fmt: skip

    def export_action(self, request: HttpRequest) -> HttpResponse:
        """import-export's export view, minus its in-memory file: the list's queryset (a full
        ChangeList) and the file are not built; a valid form streams or queues the export."""
        if not self.has_export_permission(request):
            raise PermissionDenied
        form = self.get_export_form_class()(
            self.get_export_formats(), self.get_export_resource_classes(request),
            data=request.POST or None, initial=_initial_from_list_filters(request.GET),
            user=request.user,
        )  # fmt: skip
        if request.method == "POST" and form.is_valid():
            return _export_response(form.export_request(), request)
        context = self.init_request_context_data(request, form)
        context.update(title="Export referrals", media=self.media + form.media)
        request.current_app = self.admin_site.name
        return TemplateResponse(request, [self.export_template_name], context)

    def get_export_data(self, file_format, request, queryset, **kwargs):
        # import-export's own file, built whole in memory (3.5 GB at 1M rows): no path of this
        # admin may reach it, whatever a setting or a later mixin turns on.
        raise NotImplementedError("Referral exports go through exports.services.")


def _initial_from_list_filters(query: QueryDict) -> dict:
    """The referral list's filters, which import-export's Export button carries in the query
    string, as the form's starting values."""
    initial = {}
    if query.get("q"):
        initial["search"] = query["q"]
    if (client := id_from_param(query.get("client", ""))) is not None:
        initial["client"] = client
    if (campaign := id_from_param(query.get("campaign", ""))) is not None:
        initial["campaigns"] = [campaign]
    for time_field in TIME_FIELDS:
        start = query.get(f"{time_field}__range__gte")
        end = query.get(f"{time_field}__range__lte")
        if start or end:
            initial.update(time_field=time_field, start=start, end=end)
            break
    return initial


def _export_response(export: ExportRequest, request: HttpRequest) -> HttpResponse:
    audit, stream = export_start(export, user=request.user)
    if stream is None:  # large, or XLSX: a worker writes the file
        return redirect("admin:referrals_referral_export_status", audit.pk)
    response = StreamingHttpResponse(stream, content_type=FORMATS[audit.format][0])
    response["Content-Disposition"] = f'attachment; filename="{audit.file_name}"'
    return response


def _own_export(model_admin, request: HttpRequest, audit_id: int) -> ExportAudit:
    """An export its author may follow and download; staff with the permission see all.
    Anything else answers 404, like an id that does not exist."""
    if not model_admin.has_export_permission(request):
        raise PermissionDenied
    exports = scope_to_user(ExportAudit.objects.all(), request.user, client_path="client")
    if is_client_user(request.user):
        exports = exports.filter(user=request.user)
    return get_object_or_404(exports.select_related("client"), pk=audit_id)


def export_status_view(model_admin, request: HttpRequest, audit_id: int) -> HttpResponse:
    audit = _own_export(model_admin, request, audit_id)
    if request.GET.get("format") == "json":
        return JsonResponse({
            "status": audit.status, "status_label": audit.get_status_display(),
            "rows": audit.rows, "total_rows": audit.total_rows, "error": audit.error,
            "expires": utc_text(audit.expires_at),
        })  # fmt: skip
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Export in progress" if audit.status != "done" else "Export ready",
        "opts": model_admin.model._meta,
        "audit": audit,
        "expires": utc_text(audit.expires_at),
    }
    return TemplateResponse(request, "admin/referrals/referral/export_status.html", context)


def export_download_view(model_admin, request: HttpRequest, audit_id: int) -> HttpResponse:
    audit = _own_export(model_admin, request, audit_id)
    if audit.status not in (ExportAudit.Status.DONE, ExportAudit.Status.EXPIRED):
        raise Http404("The export is not ready.")
    try:
        path = export_download(audit, user=request.user)
    except ExportGone as exc:
        return HttpResponse(f"{exc} Export again to get a new file.", status=410,
                            content_type="text/plain; charset=utf-8")  # fmt: skip
    return FileResponse(path.open("rb"), as_attachment=True, filename=audit.file_name,
                        content_type=FORMATS[audit.format][0])  # fmt: skip
