"""bgtask: database-backed background tasks for Django, drained by a time-boxed ``run_batch``.

>>> from bgtask import background, run_batch
>>> @background(schedule=60)
... def notify_user(user_id): ...
>>> notify_user(42)          # stores a Task, due in 60 s
>>> run_batch(55)            # runs what is due, for at most 55 s
"""

from bgtask.batch import BatchResult, run_batch
from bgtask.decorators import TaskFunction, background

__all__ = ["BatchResult", "TaskFunction", "background", "run_batch"]
