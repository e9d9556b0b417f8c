"""System checks: refuse settings bgtask cannot honour before a worker starts."""

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from bgtask import conf


@checks.register()
def check_settings(app_configs=None, **kwargs):
    errors = []
    if not settings.USE_TZ:
        errors.append(
            checks.Error(
                "bgtask needs USE_TZ = True: run_at and leases are compared across processes and "
                "time zones, which naive datetimes cannot do safely.",
                hint="Set USE_TZ = True (Django's default).",
                id="bgtask.E001",
            )
        )
    readers = (conf.max_attempts, conf.max_run_time, conf.claim_limit, conf.max_args_bytes)
    readers += (conf.lease_seconds,)  # reliability
    readers += (conf.retention, conf.prune_chunk_size)  # features
    readers += (conf.outcome_batch, conf.outcome_max_delay, conf.async_commit)  # outcomes
    readers += (conf.listen, conf.idle_poll)  # idle workers
    for reader in readers:
        try:
            reader()
        except ImproperlyConfigured as exc:
            errors.append(checks.Error(str(exc), id="bgtask.E002"))
    return errors
