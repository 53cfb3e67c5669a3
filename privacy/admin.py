"""What privacy adds to the admin (each in a module of its own): the referral access log, the
erasure action and its receipts."""

from privacy import admin_access_log, admin_receipts  # noqa: F401 (they register)
