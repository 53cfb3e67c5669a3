"""On PostgreSQL the database itself refuses to change a stored referral.

The model and its queryset already refuse updates; the trigger also stops raw SQL, a shell
session or a future bug. Deleting stays possible (erasure requests).
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION referrals_referral_immutable() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'referrals are immutable once stored (referral %)', OLD.id
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER referrals_referral_immutable BEFORE UPDATE ON referrals_referral
    FOR EACH ROW EXECUTE FUNCTION referrals_referral_immutable();
"""
DROP = """
DROP TRIGGER IF EXISTS referrals_referral_immutable ON referrals_referral;
DROP FUNCTION IF EXISTS referrals_referral_immutable();
"""


def _on_postgres(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)  # "%" in the SQL is not a placeholder

    return run


class Migration(migrations.Migration):
    dependencies = [("referrals", "0001_initial")]

    operations = [migrations.RunPython(_on_postgres(CREATE), _on_postgres(DROP))]
