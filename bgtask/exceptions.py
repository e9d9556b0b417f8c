"""Exceptions raised by bgtask."""

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


class TaskAbandoned(Exception):
    """The ``error`` sent with the signals of a task whose worker held it past its lease."""


class DatabaseUnavailable(OperationalError):
    """The database stopped answering (or refused) and one reconnect did not help.

    An ``OperationalError``, so code that already catches Django's error keeps working; its message
    is one line naming the database (never its credentials) and the driver's reason, raised without
    the chained driver traceback. ``process_tasks`` treats it as transient: it waits with backoff
    and carries on when the database answers again.
    """
