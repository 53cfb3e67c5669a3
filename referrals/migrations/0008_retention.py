"""Retention settings per client, and the one update a stored referral allows.

The trigger (PostgreSQL since 0002, SQLite from here) now lets an update through only when it
anonymises: ``anonymised_at`` goes from empty to set, every personal column is blank, every
other column is unchanged. Any other update is refused as before.
"""

import django.core.validators
from django.db import migrations, models

# Personal columns (referrals.anonymise.PERSONAL_FIELDS; tests/test_retention_anonymise.py
# checks that the two agree).
PERSONAL = (
    "email", "title", "first_name", "last_name", "gender", "birth_date", "age", "mobile",
    "address1", "address2", "city", "state", "zip_code", "country", "language", "ip_address",
    "user_agent", "browser", "browser_version", "os", "device", "ad_response",
    "confirmation_ref", "extra",
)  # fmt: skip
# The columns anonymising keeps (SQLite compares them one by one; PostgreSQL compares the
# whole row less the personal columns, so a column added later is protected there unnamed).
KEPT = (
    "id", "external_id", "client_id", "campaign_id", "ad_text", "audience_id", "audience_name",
    "bid_price", "currency", "opted_in_at", "created_at",
)  # fmt: skip
_ARRAY = "ARRAY[" + ", ".join(f"'{c}'" for c in PERSONAL) + "]"

POSTGRES_ALLOW = f"""
CREATE OR REPLACE FUNCTION referrals_referral_immutable() RETURNS trigger AS $$
DECLARE
    personal text[] := {_ARRAY};
BEGIN
    IF OLD.anonymised_at IS NULL AND NEW.anonymised_at IS NOT NULL
       AND (to_jsonb(NEW) - personal - 'anonymised_at')
           = (to_jsonb(OLD) - personal - 'anonymised_at')
       AND NOT EXISTS (
           SELECT 1 FROM jsonb_each(to_jsonb(NEW)) AS c(key, value)
           WHERE c.key = ANY(personal) AND c.value NOT IN ('""', 'null', '{{}}')
       )
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'referrals are immutable once stored (referral %)', OLD.id
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
"""
POSTGRES_REFUSE = """
CREATE OR REPLACE FUNCTION referrals_referral_immutable() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'referrals are immutable once stored (referral %)', OLD.id
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
"""


def _blank(column: str) -> str:
    if column in ("birth_date", "age", "ip_address"):
        return f"NEW.{column} IS NULL"
    if column == "extra":
        return "NEW.extra = '{}'"
    return f"NEW.{column} = ''"


_ANONYMISING = " AND ".join(
    ["OLD.anonymised_at IS NULL", "NEW.anonymised_at IS NOT NULL"]
    + [f"NEW.{c} IS OLD.{c}" for c in KEPT]
    + [_blank(c) for c in PERSONAL]
)
SQLITE_CREATE = f"""
CREATE TRIGGER referrals_referral_immutable BEFORE UPDATE ON referrals_referral
WHEN NOT ({_ANONYMISING})
BEGIN
    SELECT RAISE(ABORT, 'referrals are immutable once stored');
END;
"""
SQLITE_DROP = "DROP TRIGGER IF EXISTS referrals_referral_immutable;"


def _run(postgres: str, sqlite: str):
    def run(apps, schema_editor):
        vendor = schema_editor.connection.vendor
        if vendor == "postgresql":
            schema_editor.execute(postgres, params=None)  # "%" is no placeholder
        elif vendor == "sqlite":
            schema_editor.execute(sqlite, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("referrals", "0007_client_require_two_factor")]

    operations = [
        migrations.AddField(
            model_name="client",
            name="retention_days",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="Referrals older than this are anonymised or deleted by the daily "
                "purge, once no delivery still owes them. Blank: kept forever.",
                null=True,
                validators=[django.core.validators.MinValueValidator(1)],
                verbose_name="keep referrals for (days)",
            ),
        ),
        migrations.AddField(
            model_name="client",
            name="retention_action",
            field=models.CharField(
                choices=[
                    ("anonymise", "Anonymise (clear personal data, keep the row for counts)"),
                    ("delete", "Delete"),
                ],
                default="anonymise",
                max_length=10,
                verbose_name="then",
            ),
        ),
        migrations.AddField(
            model_name="referral",
            name="anonymised_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(
            _run(POSTGRES_ALLOW, SQLITE_CREATE), _run(POSTGRES_REFUSE, SQLITE_DROP)
        ),
    ]
