"""Telling idle workers that tasks were enqueued, so they start them in milliseconds.

Two paths, both taken for every enqueue (``task_enqueued`` and ``tasks_bulk_enqueued``, which every
enqueue path sends) and by the writes that make a queued task due at once (the admin's "run now"
and "retry"):

- other processes, on PostgreSQL: ``pg_notify`` on ``bgtask_enqueued`` with the queue as payload,
  in the enqueuing transaction when there is one (a rolled-back enqueue wakes nobody), else just
  after the row's own autocommit; idle workers ``LISTEN`` (``bgtask.worker.idle``);
- this process, on every database: once the transaction commits, the idle waiters of this process
  whose queues match are woken (a web process that also runs a worker thread, the tests).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import Collection, Iterable, Iterator
from typing import Any

from django.db import DatabaseError, connections, router, transaction

from bgtask import conf
from bgtask.models import Task
from bgtask.store import TaskStore

logger = logging.getLogger("bgtask.enqueue")


class LocalWake:
    """An idle waiter's doorbell in this process: ``ring(queues)`` sets ``event`` when one of
    ``queues`` is a queue it serves (``serves`` None: every queue)."""

    def __init__(self, serves: Collection[str] | None) -> None:
        self.serves = None if serves is None else frozenset(serves)
        self.event = threading.Event()

    def ring(self, queues: Iterable[str]) -> None:
        if self.serves is None or not self.serves.isdisjoint(queues):
            self.event.set()


_lock = threading.Lock()
_local: set[LocalWake] = set()


def register(wake: LocalWake) -> None:
    with _lock:
        _local.add(wake)


def unregister(wake: LocalWake) -> None:
    with _lock:
        _local.discard(wake)


def ring_local(queues: Collection[str]) -> None:
    """Wake this process's idle waiters serving any of ``queues`` (call after commit)."""
    with _lock:
        wakes = list(_local)
    for wake in wakes:
        wake.ring(queues)


# Inside ``gathered()``: the queues announced so far, sent once when it ends.
_gathering: contextvars.ContextVar[set[tuple[str, str]] | None] = contextvars.ContextVar(
    "bgtask_announce_gathering", default=None
)


@contextlib.contextmanager
def gathered() -> Iterator[None]:
    """Announce once per queue at the end, not once per task (a bulk enqueue's signals).

    >>> with gathered():
    ...     for task in created:
    ...         task_enqueued.send(sender=Task, task=task)
    """
    if _gathering.get() is not None:
        yield  # an outer gathered() announces
        return
    pending: set[tuple[str, str]] = set()
    token = _gathering.set(pending)
    try:
        yield
    finally:
        _gathering.reset(token)
    for alias in {alias for alias, _ in pending}:
        announce({queue for a, queue in pending if a == alias}, alias)


def announce(queues: Collection[str], using: str | None = None) -> None:
    """Announce that tasks of ``queues`` may be due now, to other processes and this one.

    >>> announce(["mail"])   # after an UPDATE that made queued "mail" tasks due
    """
    alias = using or router.db_for_write(Task)
    queues = frozenset(queues)
    if not queues:
        return
    pending = _gathering.get()
    if pending is not None:
        pending.update((alias, queue) for queue in queues)
        return
    if conf.listen() is not False:
        connection = connections[alias]
        try:
            TaskStore(alias).announce(sorted(queues))
        except DatabaseError:
            if connection.in_atomic_block:
                raise  # the caller's transaction is broken anyway; it must not commit half
            # The task itself is committed already: the workers' polling finds it; the enqueue
            # must not fail because of the wake-up.
            logger.warning("Could not notify idle workers of an enqueue.", exc_info=True)
    transaction.on_commit(lambda: ring_local(queues), using=alias)


def on_task_enqueued(sender: Any, task: Task, **kwargs: Any) -> None:
    """``task_enqueued`` receiver. Scheduled tasks are announced too: an idle worker then learns
    their ``run_at`` and wakes for it, instead of at the end of its nap."""
    announce([task.queue], task._state.db)


def on_tasks_bulk_enqueued(
    sender: Any, rows: list[dict[str, Any]], using: str, **kwargs: Any
) -> None:
    """``tasks_bulk_enqueued`` receiver: one announcement per queue of the rows."""
    default = conf.default_queue()
    announce({row.get("queue") or default for row in rows}, using)
