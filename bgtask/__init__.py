"""bgtask: database-backed background tasks for Django, drained by a time-boxed ``run_batch``.

>>> from bgtask import background, run_batch
>>> @background(schedule=60)
... def notify_user(user_id): ...
>>> notify_user(42)          # stores a Task, due in 60 s
>>> run_batch(55)            # runs what is due, for at most 55 s
"""

from typing import Any

from bgtask.batch import BatchResult, run_batch
from bgtask.decorators import TaskFunction, background

__all__ = [
    "BatchResult",
    "Call",
    "TaskFunction",
    "background",
    "cancel",
    "enqueue_many",
    "periodic",
    "run_batch",
]


def __getattr__(name: str) -> Any:
    # bulk and cancellation import the models, which cannot load while Django is still reading
    # INSTALLED_APPS (when it imports this package), so they are imported on first use.
    if name in ("enqueue_many", "Call"):
        from bgtask import bulk

        return getattr(bulk, name)
    if name == "cancel":
        from bgtask.cancellation import cancel

        return cancel
    raise AttributeError(f"module 'bgtask' has no attribute {name!r}")
