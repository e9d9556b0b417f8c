"""Bulk enqueue: many calls written by one INSERT, each validated exactly as a single call.

Every call is validated (arguments, schedule, queue, priority, repeat, timeout) before anything is
written; one bad call refuses the whole batch with an error naming its position. Unique calls are
not accepted here: a duplicate would abort the whole statement.

>>> send_email.bulk([(1,), (2,), send_email.call(3, subject="hi", schedule=60)])
>>> enqueue_many([send_email.call(1), rebuild_index.call(shop_id=3)])
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import router, transaction

from bgtask.models import Task

if TYPE_CHECKING:
    from bgtask.decorators import TaskFunction


@dataclass(frozen=True)
class Call:
    """One call of a task, not yet enqueued: ``fn.call(*args, **kwargs)`` builds one.

    Call options (``schedule=``, ``queue=``, ``priority=``, ``repeat=``, ...) go in ``options``.
    """

    function: TaskFunction
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


def enqueue_many(
    calls: Iterable[Call], *, using: str | None = None, return_tasks: bool = True
) -> list[Task] | int:
    """Validate every call, then write them all at once; return the rows, in order.

    ``task_enqueued`` is sent for each row once all are written. With ``return_tasks=False`` the
    rows go through the store's multi-row INSERT (COPY on PostgreSQL), several times faster for
    large batches, the number of rows is returned instead, and one ``tasks_bulk_enqueued``
    signal replaces the per-row ``task_enqueued``.
    """
    from bgtask.signals import task_enqueued

    rows = []
    for position, call in enumerate(calls):
        if not isinstance(call, Call):
            raise TypeError(
                f"enqueue_many() takes Call objects (fn.call(...)); item {position} is {call!r}."
            )
        try:
            fields = call.function.build_row(call.args, call.kwargs, **call.options)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"Call {position} ({call.function.name}): {exc}") from exc
        if fields.pop("unique_mode", None):
            raise ValueError(
                f"Call {position} ({call.function.name}) is unique (unique= or its decorator); "
                "bulk enqueue cannot honour that. Enqueue unique tasks one by one."
            )
        rows.append(fields)
    using = using or router.db_for_write(Task)
    if not return_tasks:
        return _insert_fast(rows, using)
    if not rows:
        return []
    with transaction.atomic(using=using):
        # One statement (SQLite splits it only beyond its bound-parameter limit).
        created = Task.objects.using(using).bulk_create([Task(**fields) for fields in rows])
    for task in created:
        task_enqueued.send(sender=Task, task=task)
    return created


def _insert_fast(rows: list[dict[str, Any]], using: str) -> int:
    from bgtask.signals import tasks_bulk_enqueued
    from bgtask.store import TaskStore

    if not rows:
        return 0
    count = TaskStore(using).insert_rows(rows)
    tasks_bulk_enqueued.send(sender=Task, rows=rows, count=count, using=using)
    return count
