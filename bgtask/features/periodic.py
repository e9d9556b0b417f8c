"""Periodic tasks declared in code with cron syntax: ``@periodic("*/5 * * * *")``.

Each ``run_batch`` first enqueues the periodic tasks whose latest occurrence has not been
enqueued yet. The table ``bgtask_periodic`` holds, per periodic task, the last occurrence
enqueued; it is advanced by a conditional UPDATE in the same transaction as the INSERT of the
task row, so however many batches run at once, each occurrence is enqueued exactly once and a
crash between the two writes loses nothing.

Rules:
- First sight: the first ``run_batch`` that sees a periodic task records its most recent
  occurrence without enqueueing it; the task first runs at the next occurrence. (Nothing is
  seeded per process: the table is the only state.)
- Catch-up: after downtime only the most recent missed occurrence is enqueued (due at its own
  time, so it runs at once); the ones before it are skipped.

>>> @periodic("0 3 * * *", timezone="Europe/Paris")
... def nightly_cleanup(): ...
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db import IntegrityError, router, transaction

from bgtask import clock, registry
from bgtask.enqueue.enqueueing import insert_row
from bgtask.enqueue.task_function import TaskFunction
from bgtask.exceptions import DuplicateTask
from bgtask.models import PeriodicOccurrence, Task
from bgtask.signals import task_enqueued

logger = logging.getLogger("bgtask.periodic")


def _croniter() -> Any:
    try:
        from croniter import croniter
    except ImportError:  # pragma: no cover - depends on the install
        raise ImportError("@periodic needs croniter: pip install 'bgtask[cron]'.") from None
    return croniter


@dataclass(frozen=True)
class PeriodicTask:
    """A registered periodic task: its cron expression, time zone and task function."""

    cron: str
    zone: ZoneInfo
    function: TaskFunction[[], Any]

    @property
    def name(self) -> str:
        return self.function.name

    def latest_occurrence(self, now: datetime) -> datetime:
        """The most recent occurrence at or before ``now`` (aware, UTC)."""
        croniter = _croniter()
        local = now.astimezone(self.zone)
        itr = croniter(self.cron, local)
        # croniter's get_prev is strictly before its start; an occurrence exactly at ``now``
        # counts as due.
        if croniter.match(self.cron, local.replace(microsecond=0)) and local.second == 0:
            occurrence = local.replace(microsecond=0)
        else:
            occurrence = itr.get_prev(datetime)
        return occurrence.astimezone(ZoneInfo("UTC"))


_periodic: dict[str, PeriodicTask] = {}


def periodic[R](
    cron: str,
    *,
    timezone: str | None = None,
    name: str | None = None,
    queue: str | None = None,
    priority: int = 0,
    **defaults: Any,
) -> Callable[[Callable[[], R]], TaskFunction[[], R]]:
    """Register a function (taking no arguments) to run at every occurrence of ``cron``.

    ``timezone``: the IANA zone the expression is read in (default: Django's ``TIME_ZONE``).
    The function is also a normal task (``nightly_cleanup()`` enqueues it now). ``timeout=``,
    ``unique=``, ``verbose_name=`` and the retry policy (``max_attempts=``, ``retry_on=``,
    ``backoff=``) are passed to ``@background``.
    Needs ``croniter`` (``bgtask[cron]``); an invalid expression or an unknown zone raises
    ``ValueError`` at decoration.

    Each occurrence is enqueued exactly once, by the first ``run_batch`` after it, however many
    batches run at once; after downtime only the latest missed occurrence runs.

    >>> @periodic("0 3 * * *", timezone="Europe/Paris", queue="maintenance")
    ... def nightly_cleanup(): ...
    """
    croniter = _croniter()
    if not isinstance(cron, str) or not croniter.is_valid(cron):
        raise ValueError(f"{cron!r} is not a valid cron expression (e.g. '*/5 * * * *').")
    zone_name = timezone
    if zone_name is None:
        zone_name = settings.TIME_ZONE or "UTC"
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"Unknown time zone {zone_name!r}; use an IANA name.") from None

    def decorate(func: Callable[[], R]) -> TaskFunction[[], R]:
        function = TaskFunction(func, name=name, queue=queue, priority=priority, **defaults)
        existing = _periodic.get(function.name)
        if existing is not None and existing.function.origin != function.origin:
            raise ValueError(f"Periodic task name {function.name!r} is already taken.")
        registry.register(function)
        _periodic[function.name] = PeriodicTask(cron, zone, function)
        return function

    return decorate


def find(name: str) -> PeriodicTask | None:
    """The periodic task registered under this task name, if any."""
    return _periodic.get(name)


def registered() -> list[PeriodicTask]:
    return [_periodic[name] for name in sorted(_periodic)]


def unregister(name: str) -> None:
    """Forget a periodic task (for tests)."""
    _periodic.pop(name, None)


def enqueue_due(now: datetime | None = None, using: str | None = None) -> int:
    """Enqueue every periodic occurrence that is due and not enqueued yet; return how many."""
    if not _periodic:
        return 0
    using = using or router.db_for_write(Task)
    now = now or clock.now(using)
    table = PeriodicOccurrence.objects.using(using)
    known = {row.name: row.last_enqueued_at for row in table.filter(name__in=list(_periodic))}
    enqueued = 0
    for entry in registered():
        occurrence = entry.latest_occurrence(now)
        last = known.get(entry.name)
        if last is None:
            try:
                with transaction.atomic(using=using):
                    table.create(name=entry.name, last_enqueued_at=occurrence, updated_at=now)
                logger.info("Periodic %s: first seen, first run after %s", entry.name, occurrence)
            except IntegrityError:
                pass  # another batch saw it first at the same moment
            continue
        if occurrence <= last:
            continue
        with transaction.atomic(using=using):
            won = table.filter(name=entry.name, last_enqueued_at=last).update(
                last_enqueued_at=occurrence, updated_at=now
            )
            if not won:
                continue  # another batch enqueued this occurrence
            row = entry.function.build_row([], {}, schedule=occurrence)
            try:
                task = insert_row(row, using)
            except DuplicateTask as exc:
                # The occurrence is still spent: retrying it every batch would never end.
                logger.warning(
                    "Periodic %s: occurrence %s skipped: %s", entry.name, occurrence, exc
                )
                continue
        task_enqueued.send(sender=Task, task=task)
        enqueued += 1
        logger.info(
            "Periodic %s: enqueued the occurrence of %s as #%s", entry.name, occurrence, task.id
        )
    return enqueued
