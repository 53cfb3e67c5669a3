from django.apps import AppConfig


class DeliveriesConfig(AppConfig):
    name = "deliveries"
    verbose_name = "Deliveries"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # What this app adds to the ones it is built on, which never import it.
        from celery.signals import celeryd_init

        from customfields.usage import usage_finder_register
        from deliveries.ledger import LEDGER_HOOK
        from deliveries.liveness import worker_enable
        from deliveries.selectors import failing_deliveries_context, worker_heartbeat_age_seconds
        from deliveries.usage import deliveries_using
        from referrals.hooks import stored_hook_register
        from rokt_platform.admin_site import admin_page_context_register
        from rokt_platform.health import health_detail_register

        # A custom field a delivery names cannot be renamed or deleted.
        usage_finder_register(deliveries_using)
        # Storing a referral writes what the deliveries owe, in its transaction.
        stored_hook_register(LEDGER_HOOK)
        # Every admin page tells account managers which deliveries keep failing.
        admin_page_context_register(failing_deliveries_context)
        # Informational: a worker may be legitimately absent (web-only machine).
        health_detail_register("worker_heartbeat_age_seconds", worker_heartbeat_age_seconds)
        # What a worker claims is marked as its own, to be taken back the moment it dies.
        celeryd_init.connect(worker_enable, dispatch_uid="deliveries.worker_enable")
