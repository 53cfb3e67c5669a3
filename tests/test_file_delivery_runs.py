"""File deliveries end to end against real servers: OpenSSH sshd and vsftpd on loopback."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.core import mail
from django.utils import timezone

from customfields.models import CustomField
from deliveries.file_runs import batch_redeliver, batch_resend, file_delivery_run
from deliveries.models import Batch, Delivery
from deliveries.pausing import delivery_resume
from tests.delivery_helpers import arrived, clear, csv_rows, ftps_delivery, sftp_delivery
from tests.factories import make_referral

pytestmark = pytest.mark.django_db


def other_host_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


@pytest.fixture
def sftp_dir(sshd):
    clear(sshd.upload_dir)
    yield sshd.upload_dir
    clear(sshd.upload_dir)


def test_a_run_sends_exactly_the_new_referrals_under_the_configured_name(client_a, sshd, sftp_dir):
    CustomField.objects.create(
        client=client_a, name="Surname", kind="case", source="last_name", case="upper"
    )
    delivery = sftp_delivery(
        client_a, sshd, name="Nightly CRM",
        columns=[{"source": "external_id", "output": "Id"}, {"source": "email", "output": "Email"},
                 {"source": "Surname", "output": "Surname"}],
        file_name_template="{{{client}}}-{{{delivery}}}-{{{batch}}}.csv",
    )  # fmt: skip
    people = [make_referral(client_a, last_name=f"smith{n}") for n in range(3)]

    result = file_delivery_run(delivery.pk)

    assert result.outcome == "sent"
    files = arrived(sftp_dir)
    assert list(files) == ["alpha-nightly-crm-000001.csv"]
    rows = csv_rows(files["alpha-nightly-crm-000001.csv"])
    assert rows == [["Id", "Email", "Surname"]] + [
        [p.external_id, p.email, p.last_name.upper()] for p in people
    ]
    batch = result.batches[0]
    data = files["alpha-nightly-crm-000001.csv"]
    assert (batch.status, batch.rows, batch.bytes) == ("sent", 3, len(data))
    assert batch.sha256 == hashlib.sha256(data).hexdigest()
    assert batch.files == [{"name": "alpha-nightly-crm-000001.csv", "rows": 3,
                            "bytes": len(data), "sha256": batch.sha256}]  # fmt: skip
    assert batch.started_at <= batch.finished_at
    delivery.refresh_from_db()
    assert delivery.last_success_at is not None and delivery.failing_since is None

    # Nothing new: nothing sent. Something new: only that, in the next batch.
    assert file_delivery_run(delivery.pk).outcome == "nothing"
    assert list(arrived(sftp_dir)) == ["alpha-nightly-crm-000001.csv"]
    later = make_referral(client_a, last_name="jones")
    assert file_delivery_run(delivery.pk).outcome == "sent"
    second = csv_rows(arrived(sftp_dir)["alpha-nightly-crm-000002.csv"])
    assert second == [["Id", "Email", "Surname"], [later.external_id, later.email, "JONES"]]


def test_file_options_parts_gzip_bom_delimiter_quoting_manifest(client_a, sshd, sftp_dir):
    delivery = sftp_delivery(
        client_a, sshd, name="Parts", gzip=True, bom=True, delimiter=";", quoting="all",
        max_rows_per_file=2, marker="manifest",
        columns=[{"source": "external_id", "output": "Id"},
                 {"source": "first_name", "output": "First; name"}],
        file_name_template="drop_{{{batch}}}_{{{part}}}.csv",
    )  # fmt: skip
    people = [make_referral(client_a, first_name=f"Ann {n}") for n in range(5)]
    result = file_delivery_run(delivery.pk)
    assert result.outcome == "sent"
    files = arrived(sftp_dir)
    names = [f"drop_000001_{n}.csv.gz" for n in (1, 2, 3)]
    assert sorted(files) == sorted(names + [f"{n}.manifest.json" for n in names])
    all_rows = []
    for name in names:
        data = files[name]
        raw = __import__("gzip").decompress(data)
        assert raw.startswith(b"\xef\xbb\xbf")  # the BOM
        assert raw.splitlines()[0] == b'\xef\xbb\xbf"Id";"First; name"'  # every value quoted
        rows = csv_rows(data, delimiter=";")
        assert rows[0] == ["Id", "First; name"] and len(rows) <= 3
        all_rows += rows[1:]
        manifest = json.loads(files[f"{name}.manifest.json"])
        assert manifest["file"] == name and manifest["batch"] == 1
        assert manifest["rows"] == len(rows) - 1
        assert manifest["bytes"] == len(data)
        assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
    assert all_rows == [[p.external_id, p.first_name] for p in people]
    assert [f["rows"] for f in result.batches[0].files] == [2, 2, 1]


def test_empty_files_only_when_asked_and_formulae_neutralised(client_a, sshd, sftp_dir):
    quiet = sftp_delivery(client_a, sshd, name="Quiet", file_name_template="quiet_{{{batch}}}.csv")
    empty = sftp_delivery(client_a, sshd, name="Empty", send_empty=True, marker="done",
                          file_name_template="empty_{{{batch}}}.csv",
                          columns=[{"source": "first_name", "output": "First"}])  # fmt: skip
    assert file_delivery_run(quiet.pk).outcome == "nothing"
    assert file_delivery_run(empty.pk).outcome == "sent"
    assert arrived(sftp_dir) == {"empty_000001.csv": b"First\n", "empty_000001.csv.done": b""}
    make_referral(client_a, first_name='=HYPERLINK("http://evil.example")')
    file_delivery_run(empty.pk)
    assert csv_rows(arrived(sftp_dir)["empty_000002.csv"])[1] == [
        '\'=HYPERLINK("http://evil.example")'
    ]


def test_a_wrong_host_key_fails_permanently_pauses_and_resumes_with_the_same_batch(
    client_a, sshd, sftp_dir, manager, settings
):
    manager.email = "am@example.com"
    manager.save()
    impostor = other_host_key()  # what was confirmed: the server now presents another key
    delivery = sftp_delivery(client_a, sshd, host_key=impostor,
                             file_name_template="k_{{{batch}}}.csv")  # fmt: skip
    person = make_referral(client_a)
    result = file_delivery_run(delivery.pk)
    assert result.outcome == "failed"
    assert "does not match" in result.message
    assert arrived(sftp_dir) == {}
    delivery.refresh_from_db()
    assert delivery.paused and "does not match" in delivery.paused_reason
    # Retrying cannot fix a mismatch: account managers hear at once, once.
    assert len(mail.outbox) == 1 and "am@example.com" in mail.outbox[0].to
    assert file_delivery_run(delivery.pk).outcome == "paused"
    assert len(mail.outbox) == 1

    delivery.host_key = sshd.host_keys["ed25519"]
    delivery.save()
    delivery_resume(delivery)
    result = file_delivery_run(delivery.pk)
    assert result.outcome == "sent"
    assert [b.number for b in result.batches] == [1]  # the same frozen batch, not a new one
    assert csv_rows(arrived(sftp_dir)["k_000001.csv"])[1][0] == person.external_id


# A setting no run can use (a custom field the columns name renamed or deleted behind the
# delivery's back; a file name template saved before its check existed), and what it says.
UNUSABLE = {
    "columns": "the file's columns, name or format: 'Nickname' is neither a standard field",
    "file_name_template": "Unknown placeholder {{{nope}}}",
}


@pytest.mark.parametrize("setting", UNUSABLE)
@pytest.mark.parametrize("server_name", ["sshd", "vsftpd"])
def test_a_setting_no_run_can_use_fails_the_batch_pauses_and_warns_then_sends_it_once(
    client_a, manager, request, server_name, setting
):
    server = request.getfixturevalue(server_name)
    make_delivery = sftp_delivery if server_name == "sshd" else ftps_delivery
    clear(server.upload_dir)
    manager.email = "am@example.com"
    manager.save()
    nickname = CustomField.objects.create(
        client=client_a, name="Nickname", kind="case", source="first_name", case="upper"
    )
    delivery = make_delivery(client_a, server, file_name_template="c_{{{batch}}}.csv",
                             columns=[{"source": "external_id", "output": "Id"},
                                      {"source": "Nickname", "output": "Nick"}])  # fmt: skip
    people = [make_referral(client_a, first_name=f"ann{n}") for n in range(2)]
    # Stored unchecked, as saves would refuse it.
    if setting == "columns":
        CustomField.objects.filter(pk=nickname.pk).update(name="Renamed")
    else:
        Delivery.objects.filter(pk=delivery.pk).update(file_name_template="{{{nope}}}_{{{batch}}}")

    result = file_delivery_run(delivery.pk)

    assert result.outcome == "failed" and UNUSABLE[setting] in result.message
    batch = Batch.objects.get(delivery=delivery)
    assert batch.status == "failed" and batch.next_attempt_at is None  # no back-off: paused
    assert UNUSABLE[setting] in batch.error and arrived(server.upload_dir) == {}
    delivery.refresh_from_db()
    assert delivery.paused and UNUSABLE[setting] in delivery.paused_reason
    assert "Fix the delivery's settings, then resume it" in delivery.paused_reason
    assert len(mail.outbox) == 1 and UNUSABLE[setting] in mail.outbox[0].body
    assert file_delivery_run(delivery.pk).outcome == "paused"

    # Fixed and resumed: the same frozen batch goes, once, with every referral.
    CustomField.objects.filter(pk=nickname.pk).update(name="Nickname")
    Delivery.objects.filter(pk=delivery.pk).update(file_name_template="c_{{{batch}}}.csv")
    delivery_resume(delivery)
    result = file_delivery_run(delivery.pk)
    assert result.outcome == "sent" and [b.number for b in result.batches] == [1]
    assert csv_rows(arrived(server.upload_dir)["c_000001.csv"]) == [["Id", "Nick"]] + [
        [p.external_id, p.first_name.upper()] for p in people
    ]
    assert file_delivery_run(delivery.pk).outcome == "nothing"
    clear(server.upload_dir)


def test_server_down_then_back_resends_the_same_batch_then_the_new_one(client_a, sshd, sftp_dir):
    delivery = sftp_delivery(client_a, sshd, file_name_template="d_{{{batch}}}.csv",
                             columns=[{"source": "external_id", "output": "Id"}])  # fmt: skip
    first = [make_referral(client_a).external_id for _ in range(2)]
    sshd.stop()
    try:
        result = file_delivery_run(delivery.pk)
        assert result.outcome == "failed"
        batch = Batch.objects.get(delivery=delivery, number=1)
        assert batch.status == "failed" and batch.next_attempt_at > timezone.now()
        assert batch.error
        later = make_referral(client_a).external_id
        # Not due yet: the back-off holds, nothing is rebuilt.
        assert file_delivery_run(delivery.pk).outcome == "waiting"
    finally:
        sshd.start()
    result = file_delivery_run(delivery.pk, forced=True)
    assert result.outcome == "sent"
    assert [b.number for b in result.batches] == [1, 2]
    files = arrived(sftp_dir)
    assert [r[0] for r in csv_rows(files["d_000001.csv"])[1:]] == first
    assert [r[0] for r in csv_rows(files["d_000002.csv"])[1:]] == [later]
    assert Batch.objects.get(delivery=delivery, number=1).attempts == 2


def test_resend_replaces_its_own_file_and_redelivery_is_marked(client_a, sshd, sftp_dir):
    delivery = sftp_delivery(client_a, sshd, file_name_template="r_{{{batch}}}.csv",
                             columns=[{"source": "external_id", "output": "Id"}])  # fmt: skip
    start = timezone.now()
    ids = [make_referral(client_a).external_id for _ in range(2)]
    file_delivery_run(delivery.pk)
    before = arrived(sftp_dir)["r_000001.csv"]
    batch_resend(Batch.objects.get(delivery=delivery, number=1))
    assert file_delivery_run(delivery.pk).outcome == "sent"
    assert arrived(sftp_dir) == {"r_000001.csv": before}

    batch = batch_redeliver(delivery, start, timezone.now() + dt.timedelta(seconds=1))
    assert file_delivery_run(delivery.pk).outcome == "sent"
    files = arrived(sftp_dir)
    assert set(files) == {"r_000001.csv", "r_000002_redelivery.csv"}
    assert [r[0] for r in csv_rows(files["r_000002_redelivery.csv"])[1:]] == ids
    batch.refresh_from_db()
    assert batch.kind == "redelivery" and batch.status == "sent"


def test_ftps_explicit_and_implicit_deliver(client_a, vsftpd, vsftpd_implicit):
    for server in (vsftpd, vsftpd_implicit):
        clear(server.upload_dir)
        delivery = ftps_delivery(client_a, server, file_name_template="f_{{{batch}}}.csv",
                                 columns=[{"source": "external_id", "output": "Id"}])  # fmt: skip
        person = make_referral(client_a)
        result = file_delivery_run(delivery.pk)
        assert result.outcome == "sent", result.message
        files = arrived(server.upload_dir)
        # Each delivery owes what was stored since its creation: the referral made here.
        assert csv_rows(files["f_000001.csv"]) == [["Id"], [person.external_id]]
        clear(server.upload_dir)


def test_ftps_certificate_that_does_not_verify_is_refused(client_a, vsftpd):
    clear(vsftpd.upload_dir)
    delivery = ftps_delivery(client_a, vsftpd, certificate_fingerprint="")  # system CAs only
    make_referral(client_a)
    result = file_delivery_run(delivery.pk)
    assert result.outcome == "failed"
    assert "certificate" in result.message.lower()
    assert arrived(vsftpd.upload_dir) == {}
    delivery.refresh_from_db()
    assert delivery.paused


def test_header_cells_are_neutralised_like_values(client_a, sshd, sftp_dir):
    delivery = sftp_delivery(client_a, sshd, file_name_template="h_{{{batch}}}.csv", columns=[
        {"source": "first_name", "output": "+Name"}, {"source": "city", "output": "-City"},
    ])  # fmt: skip
    make_referral(client_a, first_name="Ann", city="Leeds")
    assert file_delivery_run(delivery.pk).outcome == "sent"
    assert csv_rows(arrived(sftp_dir)["h_000001.csv"]) == [["'+Name", "'-City"], ["Ann", "Leeds"]]
