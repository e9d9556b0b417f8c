"""Exceptions raised by bgtask."""


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
