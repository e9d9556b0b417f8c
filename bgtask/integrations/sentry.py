"""Sentry: a task that fails for good is one event, tagged; a retry is a breadcrumb; ``@periodic``
tasks send Crons check-ins.

On when ``sentry-sdk`` is installed (``bgtask[sentry]``), initialised by the application
(``sentry_sdk.init``), and ``BGTASK_SENTRY`` is true (the default). The event carries the tags
``bgtask.task_name``, ``bgtask.task_id``, ``bgtask.queue`` and ``bgtask.attempt``. Each run of a
periodic task checks in ``in_progress`` when it starts and ``ok`` or ``error`` when it ends, on a
monitor named after the task (its schedule and time zone sent as the monitor's config), so Sentry
notices a schedule that stopped running.

bgtask's own log line for that failure (logger ``bgtask.execution``) is left out of Sentry's
logging integration, or the failure would arrive twice, once without its tags.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

try:
    import sentry_sdk
    from sentry_sdk.crons import capture_checkin
    from sentry_sdk.crons.consts import MonitorStatus
    from sentry_sdk.integrations import logging as sentry_logging
except ImportError:  # the extra is not installed: connect() does nothing
    AVAILABLE = False
else:
    AVAILABLE = True

from bgtask import conf, signals
from bgtask.features import periodic
from bgtask.integrations import describe, guarded
from bgtask.models import Task

#: The logger whose task-failure line the captured event replaces.
FAILURE_LOGGER = "bgtask.execution"

_checkins: dict[int, tuple[str, str, float]] = {}  # task id -> (monitor slug, check-in id, start)
_lock = threading.Lock()


def _active() -> bool:
    return conf.sentry() and sentry_sdk.get_client().is_active()


def monitor_slug(task_name: str) -> str:
    """Sentry's monitor slugs are lower-case letters, digits, ``-`` and ``_``, at most 50."""
    return re.sub(r"[^a-z0-9_-]+", "-", task_name.lower()).strip("-")[:50] or "bgtask"


def _tags(task: Task, attempt: int) -> dict[str, str]:
    return {
        "bgtask.task_name": task.task_name,
        "bgtask.task_id": str(task.pk),
        "bgtask.queue": task.queue,
        "bgtask.attempt": str(attempt),
    }


@guarded
def on_started(sender: Any, task: Task, **kwargs: Any) -> None:
    entry = periodic.find(task.task_name)
    if entry is None or not _active():
        return
    slug = monitor_slug(task.task_name)
    check_in_id = capture_checkin(
        monitor_slug=slug,
        status=MonitorStatus.IN_PROGRESS,
        monitor_config={
            "schedule": {"type": "crontab", "value": entry.cron},
            "timezone": entry.zone.key,
        },
    )
    if check_in_id:
        with _lock:
            _checkins[task.pk] = (slug, check_in_id, time.monotonic())


def _check_out(task: Task, status: str) -> None:
    with _lock:
        checkin = _checkins.pop(task.pk, None)
    if checkin is None:
        return
    slug, check_in_id, started = checkin
    capture_checkin(
        monitor_slug=slug,
        check_in_id=check_in_id,
        status=status,
        duration=time.monotonic() - started,
    )


@guarded
def on_succeeded(sender: Any, task: Task, **kwargs: Any) -> None:
    if _checkins:
        _check_out(task, MonitorStatus.OK)


@guarded
def on_retried(sender: Any, task: Task, error: BaseException | None = None, **kwargs: Any) -> None:
    if not _active():
        return
    sentry_sdk.add_breadcrumb(
        category="bgtask",
        message=f"Task {task.task_name} #{task.pk} failed, will retry",
        level="warning",
        data={**_tags(task, task.attempts), "error": describe(error) if error else None},
    )
    _check_out(task, MonitorStatus.ERROR)


@guarded
def on_failed(sender: Any, task: Task, error: BaseException | None = None, **kwargs: Any) -> None:
    if not _active():
        return
    with sentry_sdk.new_scope() as scope:
        for key, value in _tags(task, task.attempts).items():
            scope.set_tag(key, value)
        scope.set_context(
            "bgtask", {"task_id": task.pk, "task_name": task.task_name, "queue": task.queue}
        )
        if error is not None:
            sentry_sdk.capture_exception(error)
        else:
            sentry_sdk.capture_message(f"Task {task.task_name} #{task.pk} failed", level="error")
    _check_out(task, MonitorStatus.ERROR)


def connect() -> bool:
    """Connect the receivers; False (and nothing done) without the library or with
    ``BGTASK_SENTRY = False``."""
    if not AVAILABLE or not conf.sentry():
        # Off at start-up: nothing connected, so a task pays no signal dispatch for it.
        return False
    # sentry-sdk 3 names it ignore_logger_for_events (its ignore_logger is for Sentry Logs); in 2.x
    # ignore_logger keeps a logger's records out of events and breadcrumbs.
    ignore = (
        getattr(sentry_logging, "ignore_logger_for_events", None) or sentry_logging.ignore_logger
    )
    ignore(FAILURE_LOGGER)
    signals.task_started.connect(on_started, dispatch_uid="bgtask.sentry.started")
    signals.task_succeeded.connect(on_succeeded, dispatch_uid="bgtask.sentry.succeeded")
    signals.task_retried.connect(on_retried, dispatch_uid="bgtask.sentry.retried")
    signals.task_failed.connect(on_failed, dispatch_uid="bgtask.sentry.failed")
    return True


def disconnect() -> None:
    """Undo ``connect()`` (for tests and benchmarks); the logger stays ignored."""
    for signal, uid in (
        (signals.task_started, "started"),
        (signals.task_succeeded, "succeeded"),
        (signals.task_retried, "retried"),
        (signals.task_failed, "failed"),
    ):
        signal.disconnect(dispatch_uid=f"bgtask.sentry.{uid}")
