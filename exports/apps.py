from django.apps import AppConfig


class ExportsConfig(AppConfig):
    """Customer Data > Referrals > Export: built on referrals, customfields (their values) and
    deliveries (a delivery's column list). Its audit's tables stay referrals' (ExportAudit,
    ExportDownload: Customer Data's section, URLs and permissions)."""

    name = "exports"
    verbose_name = "Exports"
