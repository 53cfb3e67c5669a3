from __future__ import annotations

from celery import shared_task

from exports.services import export_build, exports_purge_expired


@shared_task(name="exports.build", ignore_result=True)
def build_export(audit_id: int) -> None:
    export_build(audit_id)


@shared_task(name="housekeeping.purge_expired_exports", ignore_result=True)
def purge_expired_exports() -> int:
    return exports_purge_expired()
