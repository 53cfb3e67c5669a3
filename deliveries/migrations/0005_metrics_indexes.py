"""Indexes /metrics reads (metrics/collector.py): what each delivery owes and since when, and
the batches finished and the attempts started lately.

Built CONCURRENTLY on PostgreSQL: the ledger is the largest, busiest table, and a plain
CREATE INDEX would block every ingestion while it reads millions of rows.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class AddIndexConcurrentlyOnPostgres(AddIndexConcurrently):
    """CONCURRENTLY where PostgreSQL can; a plain index on the embedded SQLite."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        return migrations.AddIndex.database_forwards(
            self, app_label, schema_editor, from_state, to_state
        )

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        return migrations.AddIndex.database_backwards(
            self, app_label, schema_editor, from_state, to_state
        )


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("deliveries", "0004_item_claimed_by"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="deliveryitem",
            index=models.Index(
                condition=models.Q(("status__in", ["file", "pending", "sending", "failed"])),
                fields=["delivery", "created_at"],
                name="item_owed_age",
            ),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="batch",
            index=models.Index(fields=["finished_at"], name="batch_finished"),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="attempt",
            index=models.Index(fields=["started_at"], name="attempt_started"),
        ),
    ]
