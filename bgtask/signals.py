"""Signals sent over a task's life. Each receives ``sender=Task`` (the model) and ``task=`` the row.

- ``task_enqueued``: a row was written by an enqueue.
- ``task_started``: ``run_batch`` is about to call the function.
- ``task_succeeded``: it returned; ``result=`` is the return value.
- ``task_retried``: it raised and will run again; ``error=`` is the exception.
- ``task_failed``: it raised for the last time (or cannot run at all); ``error=`` is the exception.

``tasks_bulk_enqueued`` is sent once, instead of ``task_enqueued`` per row, by the fast bulk path
(``fn.bulk(..., return_tasks=False)``): ``rows=`` the field values written (dicts, no ids),
``count=``, ``using=`` the database alias. Building a model instance per row just to signal it
would cost more than the insert.
"""

from django.dispatch import Signal

task_enqueued = Signal()
task_started = Signal()
task_succeeded = Signal()
task_retried = Signal()
task_failed = Signal()
tasks_bulk_enqueued = Signal()
