from django.apps import AppConfig


class CustomfieldsConfig(AppConfig):
    name = "customfields"
    verbose_name = "Custom fields"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from customfields import checks  # noqa: F401 (registers the database check)
