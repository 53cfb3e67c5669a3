from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The admin's home page: built on referrals, custom fields and deliveries."""

    name = "dashboard"
    verbose_name = "Dashboard"

    def ready(self) -> None:
        from dashboard.home import dashboard_context
        from rokt_platform.admin_site import admin_home_context_register

        # A client user's own data, or every client's health for staff.
        admin_home_context_register(dashboard_context)
