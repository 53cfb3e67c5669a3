"""Erasure on request: find a person's referrals, delete them and every copy, keep a receipt.

A person is named by an email address (normalised as the hash custom field normalises it:
``customfields.transforms.simple.hash_input``) across every client or one, or by a client and
the collector's external id. The receipt keeps an HMAC of that identifier, the scope, the
counts, who and when: nothing that names the person. Everything, the receipt included,
commits in one transaction (``privacy.removal`` says what that guarantees for sends).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from django.conf import settings
from django.db import transaction
from django.utils.crypto import salted_hmac

from customfields.transforms.simple import hash_input
from deliveries.models import Attempt, BatchEntry, DeliveryItem
from privacy.export_files import (
    export_files_delete,
    export_files_holding,
    export_searches_redact,
)
from privacy.models import ErasureReceipt
from privacy.removal import RemovalCounts, referrals_remove
from referrals.models import Client, Referral

Kind = ErasureReceipt.Kind


class ErasureInvalid(ValueError):
    """A request that names nobody (no email, an external id without its client)."""


@dataclass(frozen=True)
class Person:
    """Who to erase: ``email`` (normalised) in ``client``'s referrals or everyone's, or
    ``client``'s referral ``external_id``."""

    kind: str
    value: str
    client: Client | None = None

    @classmethod
    def by_email(cls, email: str, *, client: Client | None = None) -> Person:
        normal = hash_input(email)
        if not normal:
            raise ErasureInvalid("Give the email address to erase.")
        return cls(Kind.EMAIL, normal, client)

    @classmethod
    def by_external_id(cls, external_id: str, *, client: Client | None) -> Person:
        if client is None:
            raise ErasureInvalid("An external id is the client's own: give the client too.")
        if not external_id:
            raise ErasureInvalid("Give the external id to erase.")
        return cls(Kind.EXTERNAL_ID, external_id, client)

    @classmethod
    def of_referral(cls, referral: Referral, *, all_clients: bool) -> Person:
        """The person behind ``referral``: its email (in every client's referrals, or its
        own client's), or, without one, its client and external id."""
        if hash_input(referral.email):
            return cls.by_email(referral.email, client=None if all_clients else referral.client)
        return cls.by_external_id(referral.external_id, client=referral.client)


def person_referral_ids(person: Person) -> list[int]:
    """The ids of ``person``'s referrals in the scope."""
    referrals = Referral.objects.order_by()
    if person.client is not None:
        referrals = referrals.filter(client=person.client)
    if person.kind == Kind.EXTERNAL_ID:
        return list(referrals.filter(external_id=person.value).values_list("pk", flat=True))
    # iexact finds them by the email index; it also takes case differences outside ASCII,
    # which the hash's normalisation keeps apart: those are left out here.
    found = referrals.filter(email__iexact=person.value).values_list("pk", "email")
    return [pk for pk, email in found if hash_input(email) == person.value]


def identifier_hash(person: Person) -> str:
    """HMAC-SHA256 of the identifier, keyed by ``ERASURE_HASH_KEY`` (or SECRET_KEY): a plain
    hash of an email is reversed by hashing a list of addresses; this one needs the key. An
    external id is hashed with its client, as it is unique only within it."""
    text = person.value if person.kind == Kind.EMAIL else f"{person.client.pk}:{person.value}"
    key = settings.ERASURE_HASH_KEY or settings.SECRET_KEY
    return salted_hmac("privacy.erasure", f"{person.kind}:{text}", secret=key,
                       algorithm="sha256").hexdigest()  # fmt: skip


@dataclass(frozen=True)
class ErasurePreview:
    """What an erasure would delete now (the admin's confirmation page)."""

    referrals: int
    ledger_items: int
    attempts: int
    batch_entries: int
    export_files: int


def erasure_preview(person: Person) -> ErasurePreview:
    ids = person_referral_ids(person)
    if not ids:
        return ErasurePreview(0, 0, 0, 0, 0)
    clients = Referral.objects.filter(pk__in=ids).values("client_id")
    return ErasurePreview(
        referrals=len(ids),
        ledger_items=DeliveryItem.objects.filter(referral_id__in=ids).count(),
        attempts=Attempt.objects.filter(referral_id__in=ids).count(),
        # Through the client's batches: the entries' index leads with the batch.
        batch_entries=BatchEntry.objects.filter(
            batch__delivery__client_id__in=clients, referral_id__in=ids
        ).count(),
        export_files=len(export_files_holding(ids)),
    )


def erasure_run(person: Person, *, user, source: str) -> ErasureReceipt:
    """Erase ``person``'s referrals in the scope and every copy of them; the receipt."""
    with transaction.atomic():
        ids = person_referral_ids(person)
        # Both before the referrals go: they read them.
        exports = export_files_holding(ids) if ids else []
        export_searches_redact(ids)
        counts = referrals_remove(ids) if ids else RemovalCounts()
        receipt = ErasureReceipt.objects.create(
            identifier_kind=person.kind, identifier_hash=identifier_hash(person),
            client=person.client, requested_by=user, source=source, **asdict(counts),
        )  # fmt: skip
        if exports:
            why = f"File deleted: it held referrals erased on request (erasure #{receipt.pk})."
            receipt.export_files = export_files_delete(exports, why=why)
            receipt.save(update_fields=["export_files"])
    return receipt
