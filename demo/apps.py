from django.apps import AppConfig


class DemoConfig(AppConfig):
    """What ``scripts/run-demo`` adds on top of the platform: the demo data and a webhook
    inbox that receives the demo's real-time delivery (on only with ``DEMO_INBOX``)."""

    name = "demo"
    verbose_name = "Demo webhook inbox"
    default_auto_field = "django.db.models.BigAutoField"
