"""Writing validated rows: one call, or many at once. Every entry point that enqueues
(``TaskFunction``, ``enqueue_many``, periodic occurrences) validates first and writes here.

A row is the dict ``TaskFunction.build_row`` returns; its ``unique_mode`` (set by ``unique=``) is
taken out here and decides how the row is inserted (``bgtask.features.uniqueness``).
"""

from __future__ import annotations

from typing import Any

from django.db import router

from bgtask.enqueue.announce import gathered
from bgtask.enqueue.readiness import writing_tasks
from bgtask.features.uniqueness import insert_unique
from bgtask.models import Task
from bgtask.signals import task_enqueued, tasks_bulk_enqueued
from bgtask.store import TaskStore


def insert_row(row: dict[str, Any], using: str | None = None) -> Task:
    """Insert one row (honouring ``unique_mode``) and return the saved Task; no signal.

    Raises ``DuplicateTask`` when a unique call finds a pending duplicate; nothing is written then.
    """
    unique = row.pop("unique_mode", None)
    task = Task(**row)
    with writing_tasks(using):
        if unique:
            insert_unique(task, unique, using)
        else:
            TaskStore(using).insert(task)
    return task


def enqueue_row(row: dict[str, Any]) -> Task:
    """Insert one row and send ``task_enqueued``: what calling a task does."""
    task = insert_row(row)
    task_enqueued.send(sender=Task, task=task)
    return task


def enqueue_rows(
    rows: list[dict[str, Any]], *, using: str | None = None, return_tasks: bool = True
) -> list[Task] | int:
    """Insert many rows (none unique) at once; return the Tasks in order, or their number.

    With ``return_tasks`` the rows go through one ``bulk_create`` in a transaction and each sends
    ``task_enqueued``; without, through the store's multi-row INSERT (COPY on PostgreSQL) and one
    ``tasks_bulk_enqueued`` signal.
    """
    using = using or router.db_for_write(Task)
    if not return_tasks:
        if not rows:
            return 0
        with writing_tasks(using):
            count = TaskStore(using).insert_rows(rows)
        tasks_bulk_enqueued.send(sender=Task, rows=rows, count=count, using=using)
        return count
    if not rows:
        return []
    with writing_tasks(using):
        created = TaskStore(using).insert_many([Task(**fields) for fields in rows])
    with gathered():  # one wake-up per queue, not one per task
        for task in created:
            task_enqueued.send(sender=Task, task=task)
    return created
