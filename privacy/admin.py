"""What privacy adds to the admin (each in a module of its own): the referral access log, the
erasure action and its receipts, the retention purge's runs."""

from privacy import admin_access_log, admin_purge_runs, admin_receipts  # noqa: F401 (they register)
