"""bgtask: database-backed background tasks for Django, drained by a time-boxed ``run_batch``.

>>> from bgtask import background, run_batch
>>> @background(schedule=60)
... def notify_user(user_id): ...
>>> notify_user(42)          # stores a Task, due in 60 s
>>> run_batch(55)            # runs what is due, for at most 55 s
"""

from importlib import import_module
from typing import Any

from bgtask.batch import BatchResult, run_batch
from bgtask.decorators import TaskFunction, background

# These modules import the models, which cannot load while INSTALLED_APPS is still being read
# (when Django imports this package), so they are imported on first use.
_LAZY = {"enqueue_many": "bgtask.bulk", "Call": "bgtask.bulk", "cancel": "bgtask.cancellation"}

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
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bgtask' has no attribute {name!r}")
