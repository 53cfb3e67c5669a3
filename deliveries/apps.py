from django.apps import AppConfig


class DeliveriesConfig(AppConfig):
    name = "deliveries"
    verbose_name = "Deliveries"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from customfields.usage import usage_finder_register
        from deliveries.usage import deliveries_using

        # A custom field a delivery names cannot be renamed or deleted.
        usage_finder_register(deliveries_using)
