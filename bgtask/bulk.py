"""Bulk enqueue: many calls written by one INSERT, each validated exactly as a single call.

Every call is validated (arguments, schedule, queue, priority, repeat, timeout) before anything is
written; one bad call refuses the whole batch with an error naming its position. Unique calls are
not accepted here: a duplicate would abort the whole statement.

>>> send_email.bulk([(1,), (2,), send_email.call(3, subject="hi", schedule=60)])
>>> enqueue_many([send_email.call(1), rebuild_index.call(shop_id=3)])
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, overload

from asgiref.sync import sync_to_async

from bgtask.enqueue.enqueueing import enqueue_rows
from bgtask.enqueue.task_function import Call, rows_for_calls
from bgtask.models import Task

__all__ = ["Call", "aenqueue_many", "enqueue_many"]


@overload
def enqueue_many(
    calls: Iterable[Call], *, using: str | None = None, return_tasks: Literal[True] = True
) -> list[Task]: ...
@overload
def enqueue_many(
    calls: Iterable[Call], *, using: str | None = None, return_tasks: Literal[False]
) -> int: ...
@overload
def enqueue_many(
    calls: Iterable[Call], *, using: str | None = None, return_tasks: bool
) -> list[Task] | int: ...
def enqueue_many(
    calls: Iterable[Call], *, using: str | None = None, return_tasks: bool = True
) -> list[Task] | int:
    """Validate every call, then write them all at once; return the rows, in order.

    ``task_enqueued`` is sent for each row once all are written. With ``return_tasks=False`` the
    rows go through the store's multi-row INSERT (COPY on PostgreSQL), several times faster for
    large batches, the number of rows is returned instead, and one ``tasks_bulk_enqueued``
    signal replaces the per-row ``task_enqueued``.
    """
    return enqueue_rows(rows_for_calls(calls), using=using, return_tasks=return_tasks)


async def aenqueue_many(
    calls: Iterable[Call], *, using: str | None = None, return_tasks: bool = True
) -> list[Task] | int:
    """``enqueue_many`` for async code (an async view): the rows are written from a thread.

    >>> await aenqueue_many([send_email.call(1), send_email.call(2)])
    """
    calls = list(calls)  # validated here, in the caller's context, before the thread
    # sync_to_async keeps only the first of enqueue_many's overloads (return_tasks: Literal[True]).
    return await sync_to_async(enqueue_many)(calls, using=using, return_tasks=return_tasks)  # type: ignore[arg-type]
