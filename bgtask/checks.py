"""System checks: refuse settings bgtask cannot honour before a worker starts."""

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from bgtask import conf, limits

PROCESS_TASKS = "process_tasks"
# The enqueue side (bgtask.enqueue.readiness) refuses naive time in the same words.
USE_TZ_MESSAGE = (
    "bgtask needs USE_TZ = True: run_at and leases are compared across processes and time zones, "
    "which naive datetimes cannot do safely."
)


@checks.register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    if not settings.USE_TZ:
        errors.append(
            checks.Error(
                USE_TZ_MESSAGE,
                hint="Set USE_TZ = True (Django's default).",
                id="bgtask.E001",
            )
        )
    readers: tuple[Callable[[], object], ...] = (
        conf.max_attempts,
        conf.max_run_time,
        conf.claim_limit,
        conf.max_args_bytes,
    )
    readers += (conf.lease_seconds,)  # reliability
    readers += (conf.retention, conf.prune_chunk_size)  # features
    readers += (conf.outcome_batch, conf.outcome_max_delay, conf.async_commit)  # outcomes
    readers += (conf.listen, conf.idle_poll)  # idle workers
    readers += (limits.queue_limits,)  # limits across workers (BGTASK_QUEUE_LIMITS)
    for reader in readers:
        try:
            reader()
        except ImproperlyConfigured as exc:
            errors.append(checks.Error(str(exc), id="bgtask.E002"))
    try:
        conf.status_token()
    except ImproperlyConfigured as exc:
        errors.append(checks.Error(str(exc), id="bgtask.E003"))
    return errors


@checks.register()
def check_process_tasks_command(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Warn when another installed app's ``process_tasks`` shadows bgtask's.

    Django runs the command of the first app in INSTALLED_APPS that has one. With
    django-background-tasks (``background_task``) listed before bgtask, ``manage.py process_tasks``
    starts the old library's worker: it exits 0 and leaves every bgtask task queued.
    """
    from django.core.management import get_commands

    owner = get_commands().get(PROCESS_TASKS)
    if owner in (None, "bgtask"):
        return []
    return [
        checks.Warning(
            f"manage.py {PROCESS_TASKS} runs the command of the app {owner!r}, not bgtask's: "
            f"{owner!r} is listed before 'bgtask' in INSTALLED_APPS, and Django runs the first "
            "app's command. bgtask's tasks would stay queued.",
            hint=f"List 'bgtask' before {owner!r} in INSTALLED_APPS, or remove {owner!r} (after "
            "manage.py import_background_tasks, for django-background-tasks).",
            id="bgtask.W001",
        )
    ]
