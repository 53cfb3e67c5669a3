"""Deliveries in the admin: health at a glance, and the actions that fix what failed (send
now, test connection, fetch host key or certificate, pause/resume, redeliver a time range).
Client users see their own client's, read-only, no secrets. Their batches, attempts and the
workers' heartbeats are in ``admin_records``."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, OuterRef, Subquery
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from deliveries import admin_records  # noqa: F401 (registers batches, attempts, heartbeats)
from deliveries.channels import CHANNELS, WRITABLE_SECRETS, channel_for, kind_error
from deliveries.channels.base import Channel, ConnectionTestFailed
from deliveries.forms import DeliveryForm, KindField, RedeliverForm, columns_as_text
from deliveries.models import Batch, Delivery
from deliveries.pausing import delivery_pause, delivery_resume
from deliveries.replays import replay_not_delivered, replay_referral
from deliveries.schedules import schedule_describe
from deliveries.selectors import OWED, api_health, referrals_tried_since
from deliveries.services import (
    DeliveryInvalid,
    delivery_fetch_pin,
    delivery_redeliver_range,
    delivery_resume_now,
    delivery_rotate_signing_secret,
    delivery_save,
    delivery_send_now,
    delivery_test_connection,
)
from referrals.admin_tenancy import ClientListFilter, TenantScopedAdmin, id_from_param
from referrals.tenancy import is_client_user

# The list's "Last batch" column, in the list's one query rather than one query per row.
_LAST = Batch.objects.filter(delivery=OuterRef("pk")).order_by("-number")
_LAST_BATCH = {
    f"last_batch_{name}": Subquery(_LAST.values(name)[:1]) for name in ("pk", "number", "status")
}


class DeliveryAdmin(TenantScopedAdmin):
    form = DeliveryForm
    change_form_template = "admin/deliveries/delivery/change_form.html"
    list_display = (
        "name", "client", "kind", "state", "schedule", "next_run", "last_success_at",
        "pending", "success_24h", "last_batch",
    )  # fmt: skip
    list_filter = (ClientListFilter, "kind", "active")
    search_fields = ("name", "client__name", "host")
    list_select_related = ("client",)
    actions = ("send_now", "pause", "resume")
    filter_horizontal = ("campaigns",)

    def get_queryset(self, request):
        since = timezone.now() - dt.timedelta(days=1)
        return (
            super()
            .get_queryset(request)
            .annotate(
                pending_count=Count("items", filter=OWED),
                tried_24h=referrals_tried_since(since),
                delivered_24h=referrals_tried_since(since, delivered=True),
                **_LAST_BATCH,
            )
            .order_by("client__name", "name", "pk")  # an aggregate drops Meta.ordering
        )

    def get_fieldsets(self, request, obj=None):
        """The common sections, then only the delivery's own channel's (on the add page:
        the chosen kind's, none until one is chosen)."""
        client_user = is_client_user(request.user)
        columns = "column_list" if client_user else "columns_text"
        sets = [
            (None, {"fields": ["client", "name", "kind", "active", "starts_at"]}),
            ("Scope", {"fields": ["all_campaigns", "campaigns", columns]}),
        ]
        channel = _channel_of(obj) if obj is not None else self._chosen_channel(request)
        if channel is not None:
            sets += [fieldset.admin(client_user=client_user) for fieldset in channel.fieldsets]
        return sets

    def _chosen_channel(self, request: HttpRequest) -> Channel | None:
        """The add page's channel: the kind posted, else ``?kind=`` (the chooser's link)."""
        kind = request.POST.get("kind") if request.method == "POST" else None
        kind = (kind or request.GET.get("kind") or "").strip().lower()
        return CHANNELS.get(kind)

    def add_view(self, request, form_url="", extra_context=None):
        """First "which kind?" (the registry's channels, a line each), then the form of the
        chosen kind: only its sections. ``?kind=<kind>`` skips the question."""
        channel = self._chosen_channel(request)
        if request.method == "POST" or channel is not None:
            title = f"Add delivery: {channel.label}" if channel else None
            extra = {**({"title": title} if title else {}), **(extra_context or {})}
            return super().add_view(request, form_url, extra)
        if not self.has_add_permission(request):
            raise PermissionDenied
        asked = request.GET.get("kind")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Add delivery: which kind?",
            "choices": [
                (channel, "?" + urlencode({**request.GET.dict(), "kind": kind}))
                for kind, channel in CHANNELS.items()
            ],
            "problem": kind_error(asked) if asked else None,
        }
        return TemplateResponse(request, "admin/deliveries/delivery/choose_kind.html", context)

    @admin.display(description="Columns")
    def column_list(self, obj: Delivery) -> str:
        """The column list as account managers write it (``source -> output``, a line each),
        not its stored JSON."""
        lines = columns_as_text(obj.columns or []).splitlines()
        return format_html_join("\n", "{}<br>", ((line,) for line in lines)) or (
            "every standard field"
        )

    def get_readonly_fields(self, request, obj=None):
        if is_client_user(request.user):
            return [f for _, options in self.get_fieldsets(request, obj) for f in options["fields"]]
        # The kind says which settings the delivery has: changed only by a new delivery.
        return ["client", "kind"] if obj is not None else []

    def get_form(self, request, obj=None, change=False, **kwargs):
        if is_client_user(request.user):
            # No form field for a secret, ever, on a read-only page.
            # (and, as Django would, the read-only fields: every one, on this page)
            kwargs["exclude"] = [*WRITABLE_SECRETS, *self.get_readonly_fields(request, obj),
                                 *(kwargs.get("exclude") or [])]  # fmt: skip
        form = super().get_form(request, obj, change, **kwargs)
        # Only the shown sections' fields: another channel's (a required delimiter on a
        # real-time delivery, say) would be checked though never posted.
        shown = {f for _, options in self.get_fieldsets(request, obj) for f in options["fields"]}
        attrs: dict = dict.fromkeys(name for name in form.declared_fields if name not in shown)
        if obj is None and self._chosen_channel(request) is not None:
            # Chosen on the previous page; a posted "ftp" still shows the select and its error.
            attrs["kind"] = KindField(max_length=8, widget=forms.HiddenInput)
        return type(form.__name__, (form,), attrs) if attrs else form

    def save_model(self, request, obj, form, change):
        made = [name for name in _channel_of(obj).made_on_save if not getattr(obj, name)]
        try:  # with the chosen campaigns: what a widened scope owes is recorded in this save
            delivery_save(obj, campaigns=form.cleaned_data.get("campaigns"))
        except DeliveryInvalid as exc:  # the form ran the same checks; a race changed things
            raise PermissionDenied(str(exc)) from None
        for name in made:
            _show_secret_once(request, obj, name)

    # -- list columns -------------------------------------------------------------------
    @admin.display(description="State")
    def state(self, obj: Delivery):
        if not obj.active:
            return format_html('<span style="color:{}">inactive</span>', "#777")
        if obj.paused:
            return format_html('<strong style="color:#ba2121">paused</strong>: {}',
                               obj.paused_reason[:80])  # fmt: skip
        if obj.failing_since:
            return format_html(
                '<strong style="color:#ba2121">failing since {}</strong>: {}',
                _local(obj.failing_since, obj),
                obj.last_error[:80],
            )
        return format_html('<span style="color:{}">healthy</span>', "#2a7a2a")

    @admin.display(description="Schedule")
    def schedule(self, obj: Delivery) -> str:
        if not _channel_of(obj).batch:
            return "each referral as stored"  # no schedule to describe (nor to call invalid)
        return schedule_describe(obj)

    @admin.display(description="Next run", ordering="next_run_at")
    def next_run(self, obj: Delivery) -> str:
        return _local(obj.next_run_at, obj) if obj.next_run_at else "-"

    @admin.display(description="Pending", ordering="pending_count")
    def pending(self, obj: Delivery) -> int:
        return obj.pending_count

    @admin.display(description="24 h delivered")
    def success_24h(self, obj: Delivery) -> str:
        if _channel_of(obj).batch:
            return "-"
        if not obj.tried_24h:
            return "none sent"
        return f"{100 * obj.delivered_24h / obj.tried_24h:.0f}% of {obj.tried_24h}"

    @admin.display(description="Last batch")
    def last_batch(self, obj: Delivery):
        if obj.last_batch_pk is None:
            return "-"
        url = reverse("admin:deliveries_batch_change", args=[obj.last_batch_pk])
        status = Batch.Status(obj.last_batch_status).label
        return format_html('<a href="{}">#{} {}</a>', url, obj.last_batch_number, status)

    # -- bulk actions ---------------------------------------------------------------------
    @admin.action(description="Send now", permissions=["change"])
    def send_now(self, request, queryset):
        for delivery in queryset:
            delivery_send_now(delivery)
        self.message_user(request, f"Queued {queryset.count()} run(s).")

    @admin.action(description="Pause", permissions=["change"])
    def pause(self, request, queryset):
        for delivery in queryset:
            delivery_pause(delivery, f"paused by {request.user.get_username()}")
        self.message_user(request, "Paused; referrals keep being recorded and go out on resume.")

    @admin.action(description="Resume", permissions=["change"])
    def resume(self, request, queryset):
        for delivery in queryset:
            delivery_resume(delivery)
        self.message_user(request, "Resumed; what is owed goes out at the next run.")

    # -- object actions (buttons on the change page) -------------------------------------
    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/send-now/", view(self.send_now_view), name="deliveries_send_now"),
            path("<int:pk>/test/", view(self.test_view), name="deliveries_test"),
            path("<int:pk>/fetch-key/", view(self.fetch_key_view), name="deliveries_fetch_key"),
            path("<int:pk>/pin-key/", view(self.pin_key_view), name="deliveries_pin_key"),
            path("<int:pk>/pause/", view(self.pause_view), name="deliveries_pause"),
            path("<int:pk>/resume/", view(self.resume_view), name="deliveries_resume"),
            path("<int:pk>/redeliver/", view(self.redeliver_view), name="deliveries_redeliver"),
            path(
                "<int:pk>/replay-failed/",
                view(self.replay_failed_view),
                name="deliveries_replay_failed",
            ),
            path(
                "<int:pk>/replay-referral/",
                view(self.replay_referral_view),
                name="deliveries_replay_referral",
            ),
            path(
                "<int:pk>/rotate-secret/",
                view(self.rotate_secret_view),
                name="deliveries_rotate_secret",
            ),
            *super().get_urls(),
        ]

    def _changeable(self, request: HttpRequest, pk: int) -> Delivery:
        delivery = get_object_or_404(self.get_queryset(request), pk=pk)
        if not self.has_change_permission(request, delivery):
            raise PermissionDenied
        return delivery

    def _back(self, delivery: Delivery) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:deliveries_delivery_change", args=[delivery.pk]))

    def send_now_view(self, request, pk):
        return require_POST(self._send_now)(request, pk)

    def _send_now(self, request, pk):
        delivery = self._changeable(request, pk)
        if delivery.paused or not delivery.active:
            messages.error(request, "Resume (or activate) the delivery before sending.")
        else:
            delivery_send_now(delivery)
            messages.success(request, "A run is queued; its batch appears below when it starts.")
        return self._back(delivery)

    def test_view(self, request, pk):
        return require_POST(self._test)(request, pk)

    def _test(self, request, pk):
        delivery = self._changeable(request, pk)
        try:
            messages.success(request, delivery_test_connection(delivery))
        except ConnectionTestFailed as exc:
            messages.error(request, str(exc))
        return self._back(delivery)

    def fetch_key_view(self, request, pk):
        return require_POST(self._fetch_key)(request, pk)

    def _fetch_key(self, request, pk):
        """Show what the server presents, for the account manager to confirm and pin (a POST:
        it connects out, which a followed link must not do)."""
        delivery = self._changeable(request, pk)
        try:
            shown = delivery_fetch_pin(delivery)
        except ConnectionTestFailed as exc:
            messages.error(request, f"Could not fetch the server's key: {exc}")
            return self._back(delivery)
        context = {**self.admin_site.each_context(request), "delivery": delivery,
                   "shown": shown, "opts": self.model._meta,
                   "title": f"Confirm the server of {delivery.name}"}  # fmt: skip
        return TemplateResponse(request, "admin/deliveries/delivery/fetch_key.html", context)

    def pin_key_view(self, request, pk):
        return require_POST(self._pin_key)(request, pk)

    def _pin_key(self, request, pk):
        delivery = self._changeable(request, pk)
        pin = request.POST.get("pin", "").strip()
        field = _channel_of(delivery).pin_field
        if field is None:
            messages.error(request, "This kind of delivery pins no server key.")
            return self._back(delivery)
        setattr(delivery, field, pin)
        try:
            delivery_save(delivery)
        except DeliveryInvalid as exc:
            messages.error(request, f"Not pinned: {exc}")
        else:
            messages.success(request, f"Pinned {pin[:80]}.")
        return self._back(delivery)

    def pause_view(self, request, pk):
        return require_POST(self._pause)(request, pk)

    def _pause(self, request, pk):
        delivery = self._changeable(request, pk)
        delivery_pause(delivery, f"paused by {request.user.get_username()}")
        messages.success(request, "Paused; referrals keep being recorded and go out on resume.")
        return self._back(delivery)

    def resume_view(self, request, pk):
        return require_POST(self._resume)(request, pk)

    def _resume(self, request, pk):
        delivery = self._changeable(request, pk)
        delivery_resume_now(delivery)
        messages.success(request, "Resumed; what is owed is being sent.")
        return self._back(delivery)

    def replay_failed_view(self, request, pk):
        return require_POST(self._replay_failed)(request, pk)

    def _replay_failed(self, request, pk):
        delivery = self._changeable(request, pk)
        count = replay_not_delivered(delivery)
        messages.success(request, f"{count} referral(s) not delivered are being sent again.")
        return self._back(delivery)

    def replay_referral_view(self, request, pk):
        return require_POST(self._replay_referral)(request, pk)

    def _replay_referral(self, request, pk):
        delivery = self._changeable(request, pk)
        referral_id = id_from_param(request.POST.get("referral"))
        count = replay_referral(delivery, referral_id) if referral_id else 0
        if count:
            messages.success(request, f"Referral {referral_id} is being sent again.")
        else:
            messages.error(request, "That referral is not one this delivery sends.")
        return self._back(delivery)

    def rotate_secret_view(self, request, pk):
        return require_POST(self._rotate_secret)(request, pk)

    def _rotate_secret(self, request, pk):
        delivery = self._changeable(request, pk)
        delivery_rotate_signing_secret(delivery)
        _show_secret_once(request, delivery, "signing_secret")
        messages.info(request, "The previous secret keeps signing for 24 hours as well.")
        return self._back(delivery)

    def redeliver_view(self, request, pk):
        delivery = self._changeable(request, pk)
        form = RedeliverForm(request.POST or None, zone=delivery.client.zone)
        if request.method == "POST" and form.is_valid():
            done = delivery_redeliver_range(
                delivery, start=form.cleaned_data["start"], end=form.cleaned_data["end"],
                requested_by=request.user.get_username(),
            )  # fmt: skip
            if done.batch is None:
                messages.success(
                    request, f"{done.referrals} referral(s) of the range are being sent again."
                )
            else:
                messages.success(
                    request, f"Batch {done.batch.number} holds {done.referrals} referrals of "
                    "the range; it is sent as a redelivery.",
                )  # fmt: skip
            return self._back(delivery)
        context = {
            **self.admin_site.each_context(request),
            "delivery": delivery,
            "form": form,
            "opts": self.model._meta,
            "title": f"Redeliver a time range: {delivery.name}",
        }
        return TemplateResponse(request, "admin/deliveries/delivery/redeliver.html", context)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["channel"] = channel = _channel_of(obj)
            context["batches"] = obj.batches.order_by("-number")[:10]
            context["attempts"] = obj.attempts.order_by("-started_at", "-id")[:10]
            context["health"] = None if channel.batch else api_health(obj)
            context["can_act"] = self.has_change_permission(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)


def _channel_of(delivery: Delivery) -> Channel:
    return channel_for(delivery.kind)


def _show_secret_once(request, delivery: Delivery, name: str) -> None:
    label = Delivery._meta.get_field(name).verbose_name
    messages.warning(
        request,
        f"The {label} of {delivery.name}, shown this once (give it to the receiver, "
        f"who verifies every request with it): {getattr(delivery, name)}",
    )


def _local(moment: dt.datetime | None, delivery: Delivery) -> str:
    if moment is None:
        return "-"
    return timezone.localtime(moment, delivery.client.zone).strftime("%Y-%m-%d %H:%M %Z")


admin.site.register(Delivery, DeliveryAdmin)
