"""Copying the pending tasks of a django-background-tasks install into bgtask
(``manage.py import_background_tasks``).

The source is that project's ``background_task`` table, read through a model defined here in an
isolated app registry, so django-background-tasks need not be installed any more (its table is
enough) and nothing here touches its app or migrations.

A source row becomes one queued bgtask row: ``task_name``, its arguments (``task_params`` is the
JSON ``[[args...], {kwargs}]``), ``run_at``, ``priority``, ``queue``, ``attempts``, ``last_error``,
``repeat``, ``repeat_until`` and ``verbose_name`` carry over. Everything is checked before anything
is written, and all rows (with one ``bgtask_imported`` marker per source row, which makes a second
run skip them) are written in one transaction.

Not copied: rows with ``failed_at`` set (django-background-tasks moves failed tasks to
``background_task_completedtask``; one left here died while being failed), rows locked by a
worker whose lock is still within ``MAX_RUN_TIME`` (it may be running them right now: stop its
workers and run the import again), ``task_hash`` (bgtask's ``unique=`` has its own key) and
``creator`` (bgtask has no such field; the rows that had one are counted).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.apps.registry import Apps
from django.db import connections, models, router, transaction
from django.utils import timezone

from bgtask import conf, registry
from bgtask.enqueue.announce import gathered
from bgtask.enqueue.validation import check_priority, check_queue, check_verbose_name
from bgtask.features.repeating import check_repeat
from bgtask.models import ImportedTask, Task
from bgtask.serialization import encode_arguments
from bgtask.signals import task_enqueued
from bgtask.store import TaskStore

logger = logging.getLogger("bgtask.legacy_import")

SOURCE_TABLE = "background_task"
# The ``source`` of the bgtask_imported markers written for that table.
SOURCE = "django-background-tasks"

_isolated = Apps()


class LegacyTask(models.Model):
    """django-background-tasks' ``background_task`` table, as its migrations create it."""

    id = models.AutoField(primary_key=True)
    task_name = models.CharField(max_length=190)
    task_params = models.TextField()
    task_hash = models.CharField(max_length=40)
    verbose_name = models.CharField(max_length=255, null=True)
    priority = models.IntegerField(default=0)
    run_at = models.DateTimeField()
    repeat = models.BigIntegerField(default=0)
    repeat_until = models.DateTimeField(null=True)
    queue = models.CharField(max_length=190, null=True)
    attempts = models.IntegerField(default=0)
    failed_at = models.DateTimeField(null=True)
    last_error = models.TextField(blank=True)
    locked_by = models.CharField(max_length=64, null=True)
    locked_at = models.DateTimeField(null=True)
    creator_content_type_id = models.IntegerField(null=True)
    creator_object_id = models.PositiveIntegerField(null=True)

    class Meta:
        apps = _isolated
        app_label = "bgtask_legacy_import"
        db_table = SOURCE_TABLE
        managed = False

    def __str__(self) -> str:
        return f"{SOURCE_TABLE} #{self.pk} ({self.task_name})"


NESTED_TOO_DEEPLY = "task_params is nested too deeply to be decoded or stored"


class NothingToImport(Exception):
    """The database has no ``background_task`` table."""


@dataclass
class ImportPlan:
    """What an import would do; ``rows`` are ready to write (bgtask field values)."""

    pending: int = 0
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    already_imported: int = 0
    failed: int = 0
    locked: list[int] = field(default_factory=list)
    with_creator: int = 0
    unknown: Counter[str] = field(default_factory=Counter)
    invalid: list[tuple[int, str]] = field(default_factory=list)


def decode_params(text: str) -> tuple[list[Any], dict[str, Any]]:
    """``task_params`` as django-background-tasks writes it: ``[[args...], {kwargs}]``."""
    try:
        args, kwargs = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"task_params is not [[args...], {{kwargs}}] JSON: {exc}") from None
    except RecursionError:
        raise ValueError(NESTED_TOO_DEEPLY) from None
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise ValueError("task_params is not [[args...], {kwargs}] JSON")
    return args, kwargs


def _priority(value: int) -> int:
    # With BACKGROUND_TASK_PRIORITY_ORDERING = "ASC" a lower number ran first there; bgtask always
    # runs the higher first, so the order is kept by turning the numbers round.
    if conf.legacy_priority_ascending():
        value = -value
    return check_priority(value)


def _fields(source: LegacyTask, now: datetime) -> dict[str, Any]:
    args, kwargs = decode_params(source.task_params)
    repeat = check_repeat(max(source.repeat or 0, 0))
    return {
        "task_name": source.task_name,
        "arguments": encode_arguments(args, kwargs),
        "queue": check_queue(source.queue) if source.queue else conf.default_queue(),
        "priority": _priority(source.priority),
        "run_at": source.run_at,
        "attempts": max(source.attempts or 0, 0),
        "last_error": source.last_error or "",
        "repeat": repeat,
        "repeat_until": source.repeat_until if repeat else None,
        "verbose_name": check_verbose_name(source.verbose_name),
        "created_at": now,
    }


def has_source_table(using: str) -> bool:
    connection = connections[using]
    with connection.cursor() as cursor:
        return SOURCE_TABLE in connection.introspection.table_names(cursor)


def plan_import(using: str, *, now: datetime | None = None) -> ImportPlan:
    """Read the source table and decide what each row becomes; writes nothing."""
    if not has_source_table(using):
        raise NothingToImport(f"Database {using!r} has no {SOURCE_TABLE} table.")
    now = now or timezone.now()
    plan = ImportPlan()
    done = set(
        ImportedTask.objects.using(using).filter(source=SOURCE).values_list("source_id", flat=True)
    )
    lock_expired_before = now - timedelta(seconds=conf.max_run_time())
    known = set(registry.names())
    for source in LegacyTask._default_manager.using(using).order_by("id").iterator(chunk_size=2000):
        if source.failed_at is not None:
            plan.failed += 1
            continue
        plan.pending += 1
        if source.id in done:
            plan.already_imported += 1
            continue
        if source.locked_by and source.locked_at and source.locked_at >= lock_expired_before:
            plan.locked.append(source.id)
            continue
        try:
            fields = _fields(source, now)
        except (TypeError, ValueError) as exc:
            plan.invalid.append((source.id, str(exc)))
            continue
        except RecursionError:  # decoded, but too deep for the checks and encoder that follow
            plan.invalid.append((source.id, NESTED_TOO_DEEPLY))
            continue
        if source.task_name not in known:
            plan.unknown[source.task_name] += 1
        if source.creator_content_type_id is not None:
            plan.with_creator += 1
        plan.rows.append((source.id, fields))
    return plan


def write_plan(plan: ImportPlan, using: str, *, now: datetime | None = None) -> list[Task]:
    """Write the plan's rows and their markers, all or nothing; return the new tasks.

    A concurrent import of the same rows fails on the markers' unique constraint and rolls back
    entirely (run it again: it then skips what the other one copied)."""
    now = now or timezone.now()
    created: list[Task] = []
    connection = connections[using]
    with transaction.atomic(using=using):
        tasks = [Task(**fields) for _, fields in plan.rows]
        store = TaskStore(using)
        if connection.features.can_return_rows_from_bulk_insert:
            created = store.insert_many(tasks)
        else:  # pragma: no cover - every supported database returns ids from a bulk insert
            created = [store.insert(task) for task in tasks]
        ImportedTask.objects.using(using).bulk_create(
            [
                ImportedTask(source=SOURCE, source_id=source_id, task_id=task.pk, imported_at=now)
                for (source_id, _), task in zip(plan.rows, created, strict=True)
            ],
            batch_size=500,
        )

    def announce() -> None:
        with gathered():  # one wake-up of idle workers per queue, not one per task
            for task in created:
                task_enqueued.send(sender=Task, task=task)

    # After the outermost commit (the command wraps reading and writing in one transaction), so a
    # receiver (the Lambda wake-up) never sees tasks that could still be rolled back.
    transaction.on_commit(announce, using=using)
    logger.info("Imported %d task(s) from %s.", len(created), SOURCE_TABLE)
    return created


def default_database() -> str:
    return router.db_for_write(Task)
