from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ReferralsConfig(AppConfig):
    name = "referrals"
    # The admin shows this app as the "Customer Data" section.
    verbose_name = "Customer Data"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from referrals.dashboard import dashboard_context
        from referrals.roles import ensure_roles_after_migrate
        from rokt_platform.admin_site import admin_home_context_register

        post_migrate.connect(ensure_roles_after_migrate, dispatch_uid="referrals.ensure_roles")
        # The home page: a client user's own data, or every client's health for staff.
        admin_home_context_register(dashboard_context)
