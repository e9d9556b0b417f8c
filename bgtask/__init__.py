"""bgtask: database-backed background tasks for Django, drained by a time-boxed ``run_batch``.

>>> from bgtask import background, run_batch
>>> @background(schedule=60)
... def notify_user(user_id): ...
>>> notify_user(42)          # stores a Task, due in 60 s
>>> run_batch(55)            # runs what is due, for at most 55 s

The names below are loaded on first use (PEP 562): Django imports this package while it reads
INSTALLED_APPS, before any model can load, and every one of them reaches the Task model. Inside
the package, imports run one way, with no import inside a function to dodge a cycle:

    public API (decorators, bulk, periodic)  ->  batch  ->  execution  ->  store  ->  models
    decorators, bulk, registry  ->  task_function  ->  validation, enqueueing  ->  store  ->  models

The optional features (repeating, periodic, uniqueness, cancellation, pausing, pruning) live in
``bgtask.features``; tests/core/test_layers.py checks the layering.
"""

from typing import TYPE_CHECKING, Any

#: The one place the version is written: pyproject.toml reads it (``dynamic = ["version"]``).
__version__ = "0.1.0"

if TYPE_CHECKING:  # what the names below are, for type checkers and the API reference
    from bgtask.bulk import Call, enqueue_many
    from bgtask.current import CurrentTask, current_task, set_progress
    from bgtask.decorators import TaskFunction, background
    from bgtask.features.cancellation import cancel
    from bgtask.features.pausing import pause_queue, resume_queue
    from bgtask.worker.batch import BatchResult, run_batch

__all__ = [
    "BatchResult",
    "Call",
    "CurrentTask",
    "TaskFunction",
    "background",
    "cancel",
    "current_task",
    "enqueue_many",
    "pause_queue",
    "resume_queue",
    "run_batch",
    "set_progress",
]


def __getattr__(name: str) -> Any:
    if name in ("background", "TaskFunction"):
        from bgtask import decorators

        return getattr(decorators, name)
    if name in ("run_batch", "BatchResult"):
        from bgtask.worker import batch

        return getattr(batch, name)
    if name in ("enqueue_many", "Call"):
        from bgtask import bulk

        return getattr(bulk, name)
    if name == "cancel":
        from bgtask.features import cancellation

        return cancellation.cancel
    if name in ("current_task", "set_progress", "CurrentTask"):
        from bgtask import current

        return getattr(current, name)
    if name in ("pause_queue", "resume_queue"):
        from bgtask.features import pausing

        return getattr(pausing, name)
    raise AttributeError(f"module 'bgtask' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
