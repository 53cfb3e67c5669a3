"""The delivery channels (``deliveries/channels/``): every kind has one, each declares real
columns of ``Delivery``, its secrets are write-only in the API and never on an admin page, and
nothing outside the channels asks which kind a delivery is, but what the allowlist below
still holds for later steps (it may only shrink)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from django import forms as django_forms

from deliveries.api.serializers import DeliverySerializer
from deliveries.channels import CHANNELS, SECRETS, WRITABLE_SECRETS, channel_for, delivery_errors
from deliveries.channels.base import Channel
from deliveries.forms import DeliveryForm
from deliveries.models import Delivery
from deliveries.secrets import EncryptedTextField
from tests.factories import make_file_delivery
from tests.test_dependencies import LAYER, ROOT

CHANNELS_DIR = ROOT / "deliveries" / "channels"
# file: why it still branches on a delivery's kind. Each line is work for a later step of
# issue 16; the test fails when a file here no longer branches (strike its line).
ALLOWED = {
    "deliveries/api_due.py": "the real-time engine's SQL picks real-time deliveries by kind; "
    "the engine cannot ask the registry, which imports it (the http channel's send and "
    "test): item 2 decides which way the engine and its channel depend",
}
KIND_NAMES = set(Delivery.Kind.names)
KIND_VALUES = {*Delivery.Kind.values, "ftp"}
QUERIES = {"filter", "exclude", "get", "get_object_or_404", "update"}
_VALUES = "|".join(sorted(KIND_VALUES))
SQL_KIND = re.compile(rf"\bkind\s*(=|<>|!=|IN)\s*\(?\s*'({_VALUES})'")


def test_every_kind_has_a_channel_with_its_label():
    assert list(CHANNELS) == list(Delivery.Kind.values)
    for kind, label in Delivery.Kind.choices:
        channel = channel_for(kind)
        assert isinstance(channel, Channel) and channel.kind == kind and channel.label == label
        assert channel.description and channel.fieldsets


@pytest.mark.parametrize("channel", CHANNELS.values(), ids=list(CHANNELS))
def test_a_channels_declared_fields_are_delivery_columns_and_its_secrets_encrypted(channel):
    columns = {field.name: field for field in Delivery._meta.concrete_fields}
    declared = (*channel.fields, *channel.secrets, *channel.required, *channel.made_on_save)
    assert not [name for name in declared if name not in columns]
    assert set(channel.secrets) <= set(channel.fields)
    assert set(channel.required) <= set(channel.settings)
    assert channel.pin_field is None or channel.pin_field in channel.settings
    for name in channel.secrets:
        assert isinstance(columns[name], EncryptedTextField), name
    encrypted = {n for n, f in columns.items() if isinstance(f, EncryptedTextField)}
    assert encrypted == set(SECRETS)  # no secret column that no channel declares


@pytest.mark.parametrize("channel", CHANNELS.values(), ids=list(CHANNELS))
def test_a_channels_admin_sections_name_only_form_fields_and_show_clients_no_secret(channel):
    form_fields = DeliveryForm.base_fields
    for fieldset in channel.fieldsets:
        assert not [f for f in fieldset.fields if f not in form_fields], fieldset.title
        assert not set(fieldset.client_fields) - set(fieldset.fields), fieldset.title
        shown = set(fieldset.client_fields)
        assert not shown & {*SECRETS, "username", "auth_username", "host_key"}, fieldset.title
    for name in channel.writable_secrets:
        widget = form_fields[name].widget
        assert not getattr(widget, "render_value", False), name
        assert isinstance(widget, django_forms.PasswordInput | django_forms.Textarea), name


def test_secrets_are_write_only_in_the_api_and_the_platforms_own_are_not_fields():
    fields = DeliverySerializer().fields
    for name in SECRETS:
        if name in WRITABLE_SECRETS:
            assert fields[name].write_only, name
        else:
            assert name not in fields, name


def test_an_unknown_kind_is_refused_by_name(db):
    assert delivery_errors(Delivery(kind="ftp", name="x")) == {"kind": [
        "Plain FTP is not offered: it sends the password and every referral in clear text. "
        "Use SFTP, or FTPS (FTP over TLS), which most FTP servers also speak."
    ]}  # fmt: skip
    assert delivery_errors(Delivery(kind="fax", name="x")) == {
        "kind": ["Unknown kind 'fax': choose api, sftp or ftps."]
    }


@pytest.mark.django_db
@pytest.mark.parametrize("kind", list(CHANNELS))
def test_stored_secrets_are_never_on_the_admin_pages(client, manager, client_a, kind):
    values = {name: f"secret-{name}-q7Zx" for name in CHANNELS[kind].secrets}
    delivery = make_file_delivery(client_a, kind=kind, **values)
    client.force_login(manager)
    page = client.get(f"/admin/deliveries/delivery/{delivery.pk}/change/").content.decode()
    assert "A value is stored" in page
    assert not [name for name, value in values.items() if value in page]
    listed = client.get("/admin/deliveries/delivery/").content.decode()
    assert not [name for name, value in values.items() if value in listed]


def _is_kind(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id == "kind") or (
        isinstance(node, ast.Attribute) and node.attr == "kind"
    )


def _is_kind_value(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return node.value in KIND_VALUES
    if isinstance(node, ast.Attribute):  # Delivery.Kind.API, self.Kind.SFTP
        owner = node.value
        return node.attr in KIND_NAMES and isinstance(owner, ast.Attribute) and owner.attr == "Kind"
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(_is_kind_value(element) for element in node.elts)
    return False


def kind_branches(path: Path) -> list[int]:
    """Lines of ``path`` that compare a kind with a delivery kind (``x.kind == "api"``,
    ``kind in (Delivery.Kind.SFTP, ...)``), filter deliveries by one (``kind=...``), or say
    one in SQL (``d.kind = 'api'``)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(map(_is_kind, operands)) and any(map(_is_kind_value, operands)):
                lines.append(node.lineno)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in QUERIES and any(
                k.arg in ("kind", "kind__in") and _is_kind_value(k.value) for k in node.keywords
            ):
                lines.append(node.lineno)
        elif isinstance(node, ast.Constant) and SQL_KIND.search(str(node.value)):
            lines.append(node.lineno)
    return lines


def _modules() -> list[Path]:
    return sorted(
        path for app in LAYER for path in (ROOT / app).rglob("*.py")
        if "migrations" not in path.parts and CHANNELS_DIR not in path.parents
    )  # fmt: skip


def test_nothing_outside_the_channels_branches_on_a_delivery_kind_but_the_allowlist():
    found = {}
    for path in _modules():
        lines = kind_branches(path)
        if lines:
            found[str(path.relative_to(ROOT))] = lines
    assert not {f: lines for f, lines in found.items() if f not in ALLOWED}, (
        "ask the registry (deliveries.channels.channel_for) instead"
    )
    assert not set(ALLOWED) - set(found), "no longer branches: strike it from ALLOWED"


def test_the_branch_finder_sees_each_way_of_asking(tmp_path):
    source = (
        'a = d.kind == "api"\nb = kind in (Delivery.Kind.SFTP,)\n'
        "c = Delivery.objects.filter(kind=Delivery.Kind.API)\n"
        "sql = \"SELECT 1 WHERE d.kind = 'api'\"\n"
        'fine = d.auth_kind == "basic" or batch.kind == "redelivery"\n'
    )
    path = tmp_path / "probe.py"
    path.write_text(source)
    assert kind_branches(path) == [1, 2, 3, 4]


@pytest.mark.django_db
def test_the_add_page_asks_the_kind_first_and_a_change_cannot_switch_it(client, manager, client_a):
    client.force_login(manager)
    chooser = client.get("/admin/deliveries/delivery/add/").content.decode()
    assert 'name="url"' not in chooser and 'name="host"' not in chooser
    assert all(f'href="?kind={kind}"' in chooser for kind in CHANNELS)
    refused = client.get("/admin/deliveries/delivery/add/?kind=ftp").content.decode()
    assert "Plain FTP is not offered" in refused and 'name="host"' not in refused
    form = client.get("/admin/deliveries/delivery/add/?kind=ftps").content.decode()
    assert 'name="certificate_fingerprint"' in form and 'name="host_key"' not in form
    assert 'name="url"' not in form

    delivery = make_file_delivery(client_a, kind="sftp", name="Drop")
    change = f"/admin/deliveries/delivery/{delivery.pk}/change/"
    page = client.get(change).content.decode()
    assert 'name="host_key"' in page and 'name="certificate_fingerprint"' not in page
    assert 'name="kind"' not in page  # shown as text
    client.post(change, {"kind": "api", "name": "Drop", "url": "https://x.example/"})
    delivery.refresh_from_db()
    assert delivery.kind == "sftp"
