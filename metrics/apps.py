from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "metrics"
    verbose_name = "Metrics"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from celery.signals import beat_init

        from metrics.beat import beat_tick_enable
        from metrics.ingest import ingest_observe
        from referrals.hooks import ingested_hook_register

        # Beat (and only beat) records when it last sent a scheduled task.
        beat_init.connect(beat_tick_enable, weak=False, dispatch_uid="metrics.beat_tick_enable")
        # Counted where it happens: the outcome of each ingested record, the request's time.
        ingested_hook_register(ingest_observe)
