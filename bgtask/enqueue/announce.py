"""Telling idle workers that tasks were enqueued, so they start them in milliseconds.

Two paths, both taken for every enqueue (``task_enqueued`` and ``tasks_bulk_enqueued``, which every
enqueue path sends) and by the writes that make a queued task due at once (the admin's "run now"
and "retry", a retry due at once):

- other processes, on PostgreSQL: a notification on ``bgtask_enqueued`` naming the queue, in the
  writing transaction (a rolled-back enqueue wakes nobody); idle workers ``LISTEN``
  (``bgtask.worker.idle``). An insert sends it by itself, from the task table's trigger (migration
  0014), inside the INSERT statement; an UPDATE that makes tasks due sends ``pg_notify`` here;
- this process, on every database: once the transaction commits, the idle waiters of this process
  whose queues match are woken (a web process that also runs a worker thread, the tests).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import Collection, Iterable, Iterator
from datetime import datetime
from typing import Any

from django.db import DatabaseError, connections, router, transaction

from bgtask import conf
from bgtask.models import Task
from bgtask.store import TaskStore

logger = logging.getLogger("bgtask.enqueue")


class LocalWake:
    """An idle waiter's doorbell in this process: ``ring(queues)`` sets ``event`` when one of
    ``queues`` is a queue it serves (``serves`` None: every queue), and so does ``learn(queue,
    run_at)``, which only tells it when a task scheduled ahead becomes due. ``take()`` says which
    of the two happened since the last look."""

    def __init__(self, serves: Collection[str] | None) -> None:
        self.serves = None if serves is None else frozenset(serves)
        self.event = threading.Event()
        self._lock = threading.Lock()
        self._claim = False  # rung: work may be due now
        self._due: datetime | None = None  # learnt: the earliest run_at announced since

    def ring(self, queues: Iterable[str] | None = None) -> None:
        """Work of ``queues`` (None: of any queue) may be due now."""
        if queues is None or self.serves is None or not self.serves.isdisjoint(queues):
            with self._lock:
                self._claim = True
                self.event.set()

    def learn(self, queue: str, run_at: datetime) -> None:
        """A task of ``queue`` becomes due at ``run_at`` (ahead; nothing to claim before)."""
        if self.serves is None or queue in self.serves:
            with self._lock:
                if self._due is None or run_at < self._due:
                    self._due = run_at
                self.event.set()

    def take(self) -> tuple[bool, datetime | None]:
        """(rung, the earliest run_at learnt) since the last take; clears ``event``. Under the
        lock, so a ring between reading and clearing is never lost."""
        with self._lock:
            rung, due = self._claim, self._due
            self._claim, self._due = False, None
            self.event.clear()
        return rung, due


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


# Inside ``gathered()``: (alias, queue, inserted) announced so far, sent once when it ends.
_gathering: contextvars.ContextVar[set[tuple[str, str, bool]] | None] = contextvars.ContextVar(
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
    pending: set[tuple[str, str, bool]] = set()
    token = _gathering.set(pending)
    try:
        yield
    finally:
        _gathering.reset(token)
    for alias, inserted in {(alias, inserted) for alias, _, inserted in pending}:
        queues = {queue for a, queue, i in pending if a == alias and i == inserted}
        announce(queues, alias, inserted=inserted)


def announce(queues: Collection[str], using: str | None = None, *, inserted: bool = False) -> None:
    """Announce that tasks of ``queues`` may be due now, to other processes and this one.

    ``inserted``: the tasks were just inserted (an enqueue), which on PostgreSQL has notified the
    other processes already (the insert trigger); only this process's waiters are left to wake.

    >>> announce(["mail"])   # after an UPDATE that made queued "mail" tasks due
    """
    alias = using or router.db_for_write(Task)
    queues = frozenset(queues)
    if not queues:
        return
    pending = _gathering.get()
    if pending is not None:
        pending.update((alias, queue, inserted) for queue in queues)
        return
    store = TaskStore(alias)
    if conf.listen() is not False and not (inserted and store.inserts_announce_themselves):
        connection = connections[alias]
        try:
            store.announce(sorted(queues))
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
    announce([task.queue], task._state.db, inserted=True)


def on_tasks_bulk_enqueued(
    sender: Any, rows: list[dict[str, Any]], using: str, **kwargs: Any
) -> None:
    """``tasks_bulk_enqueued`` receiver: one announcement per queue of the rows."""
    default = conf.default_queue()
    announce({row.get("queue") or default for row in rows}, using, inserted=True)
