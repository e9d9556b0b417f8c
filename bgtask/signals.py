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

Two signals describe the worker's own statements rather than one task, for tracing and metrics.
Both are sent with ``sender=Task`` and ``worker_id=`` (the batch's lease holder), ``started=`` and
``finished=`` (aware UTC datetimes around the statement, so a receiver can record it after the
fact), only when someone listens (no clock is read otherwise), and robustly: a receiver that
raises is logged and the batch goes on.

- ``tasks_claimed``: a claim took tasks (an empty claim sends nothing); ``tasks=`` the claimed
  ``Task`` rows, ``queue=`` the queue the batch drains (``None``: every queue).
- ``outcomes_written``: a group of successes was written in one statement; ``count=`` the rows
  in the group, ``written=`` how many the statement wrote (the rest had lost their lease).
"""

from django.dispatch import Signal

task_enqueued = Signal()
task_started = Signal()
task_succeeded = Signal()
task_retried = Signal()
task_failed = Signal()
tasks_bulk_enqueued = Signal()
tasks_claimed = Signal()
outcomes_written = Signal()
