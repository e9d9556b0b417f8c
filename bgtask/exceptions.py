"""Exceptions raised by bgtask."""


class TaskNameConflict(Exception):
    """Two different functions were registered under the same task name."""


class UnknownTask(LookupError):
    """A row names a task that is not registered in this process."""
