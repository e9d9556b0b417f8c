"""Exceptions raised by bgtask."""

from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError


class TaskNameConflict(Exception):
    """Two different functions were registered under the same task name."""


class UnknownTask(LookupError):
    """A row names a task that is not registered in this process."""


class DuplicateTask(Exception):
    """A unique enqueue met a pending task with the same name and arguments.

    ``existing_id`` is the id of the pending task (``None`` if it finished meanwhile).
    """

    def __init__(self, message: str, existing_id: int | None = None) -> None:
        super().__init__(message)
        self.existing_id = existing_id


class TaskAbandoned(BaseException):
    """A task's worker held it past its lease and another worker took it over.

    Sent as the ``error`` of the signals of a task rescued from a dead worker. Also raised inside a
    task that is still running when its worker finds its lease gone (a worker frozen past its
    lease, then thawed): the other run goes on alone, and this run's outcome is discarded. A
    ``BaseException``, like ``TaskTimedOut``, so that a task's own ``except Exception`` does not
    swallow it.
    """

    def __init__(self, message: str = "") -> None:
        super().__init__(
            message
            or "Stopped: this worker held the task past its lease and another worker took it "
            "over; this run's outcome is discarded."
        )


class TaskCancelled(BaseException):
    """Raised inside a running task whose cancel was asked (``bgtask.cancel(task)``) once its
    worker sees the request; the row ends ``cancelled`` and is never retried. An async task is
    cancelled at its next ``await`` instead. A ``BaseException``, like ``TaskTimedOut``, so that a
    task's own ``except Exception`` does not swallow it."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message or "Cancelled while it ran: bgtask.cancel() asked it to stop.")


class DatabaseUnavailable(OperationalError):
    """``run_batch`` lost its database (connection refused, dropped, server shutting down) and one
    reconnect did not bring it back. The message is one line naming the alias and server (never
    credentials); the driver's traceback is not chained. A subclass of Django's
    ``OperationalError``, so ``except OperationalError`` clauses keep catching it.

    ``process_tasks`` waits and retries on it; a direct ``run_batch`` caller may simply call again
    later: tasks claimed but not started are released by the next ``run_batch`` in the process,
    or claimable by anyone once their (short) lease expires.
    """


class DatabaseNotMigrated(ImproperlyConfigured):
    """An enqueue met a database that lacks bgtask's table or some of its columns: bgtask's
    migrations are not all applied there. The message names the missing migrations and says to
    run ``python manage.py migrate``; the driver's error is chained. Nothing was written.
    """


class InvalidTaskError(Exception):
    """Raise it (or a subclass) in a task to fail it at once: no retry, whatever attempts remain.

    For errors that running again cannot fix (the order no longer exists, the input is wrong).
    The task is marked failed with this traceback in ``last_error`` and ``task_failed`` is sent.
    django-background-tasks' ``InvalidTaskError`` had the same meaning; ``errors=`` is accepted
    as it was there.

    >>> @background
    ... def ship(order_id):
    ...     if not Order.objects.filter(pk=order_id).exists():
    ...         raise InvalidTaskError(f"order {order_id} is gone")
    """

    def __init__(self, message: str = "", errors: object = None) -> None:
        super().__init__(message)
        self.errors = errors
