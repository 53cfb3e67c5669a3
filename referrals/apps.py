from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ReferralsConfig(AppConfig):
    name = "referrals"
    # The admin shows this app as the "Customer Data" section.
    verbose_name = "Customer Data"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from referrals.roles import ensure_roles_after_migrate
        from referrals.two_factor.views import PasswordStepView
        from rokt_platform.admin_site import admin_login_view_register

        admin_login_view_register(PasswordStepView)

        post_migrate.connect(ensure_roles_after_migrate, dispatch_uid="referrals.ensure_roles")
