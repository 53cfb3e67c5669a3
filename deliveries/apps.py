from django.apps import AppConfig


class DeliveriesConfig(AppConfig):
    name = "deliveries"
    verbose_name = "Deliveries"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # What this app adds to the ones it is built on, which never import it.
        from customfields.usage import usage_finder_register
        from deliveries.ledger import LEDGER_HOOK
        from deliveries.usage import deliveries_using
        from referrals.hooks import stored_hook_register

        # A custom field a delivery names cannot be renamed or deleted.
        usage_finder_register(deliveries_using)
        # Storing a referral writes what the deliveries owe, in its transaction.
        stored_hook_register(LEDGER_HOOK)
