"""The one table that holds all of bgtask's state.

A row moves ``queued -> running -> succeeded | failed``; a retry moves it from ``running`` back to
``queued`` with a later ``run_at``, and a cancel moves a queued row to ``cancelled``.
``locked_by``/``locked_until`` form the lease of the worker running it: once ``locked_until`` has
passed, the task is taken as abandoned and may be claimed again.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone


class TaskQuerySet(models.QuerySet["Task"]):
    """States as QuerySet methods, so admin, status endpoints and tests speak the same words."""

    def queued(self) -> TaskQuerySet:
        """Tasks waiting to run: due now, scheduled later, or waiting for a retry."""
        return self.filter(status=Task.QUEUED)

    def due(self, now: datetime | None = None) -> TaskQuerySet:
        """Queued tasks whose time has come (what ``run_batch`` claims)."""
        return self.filter(status=Task.QUEUED, run_at__lte=now or timezone.now())

    def scheduled(self, now: datetime | None = None) -> TaskQuerySet:
        """Queued tasks whose ``run_at`` is still in the future."""
        return self.filter(status=Task.QUEUED, run_at__gt=now or timezone.now())

    def running(self) -> TaskQuerySet:
        """Tasks a worker has claimed, whether or not its lease is still valid."""
        return self.filter(status=Task.RUNNING)

    def abandoned(self, now: datetime | None = None) -> TaskQuerySet:
        """Running tasks whose lease has expired: their worker is taken as dead.

        A running row with no lease at all (written by hand or by a bug; bgtask's claim always sets
        one) counts as expired too, or nothing would ever run it again."""
        expired = Q(locked_until__lt=now or timezone.now()) | Q(locked_until=None)
        return self.filter(expired, status=Task.RUNNING)

    def succeeded(self) -> TaskQuerySet:
        """Tasks whose function returned (history until pruned)."""
        return self.filter(status=Task.SUCCEEDED)

    def failed(self) -> TaskQuerySet:
        """Tasks that failed for good (history until pruned); cancelled ones are apart."""
        return self.filter(status=Task.FAILED)

    def cancelled(self) -> TaskQuerySet:
        """Tasks cancelled before they ran (history until pruned)."""
        return self.filter(status=Task.CANCELLED)

    def finished(self) -> TaskQuerySet:
        """Succeeded, failed and cancelled tasks: the history that ``BGTASK_RETENTION`` prunes."""
        return self.filter(status__in=Task.FINISHED_STATUSES)


class Task(models.Model):
    """One enqueued call of a task: what to run, when, and what happened to it.

    A call of a ``@background`` function writes one row and returns it. Fields to read:
    ``task_name``, ``queue``, ``priority``, ``run_at`` (when it is due), ``status`` (``QUEUED``,
    ``RUNNING``, ``SUCCEEDED``, ``FAILED`` or ``CANCELLED``), ``attempts``, ``last_error`` (the last
    traceback), ``failed_at``, ``created_at``, ``started_at``, ``finished_at``, the decoded
    ``args``, ``kwargs`` and ``return_value``, and the options ``repeat``, ``repeat_until``,
    ``timeout`` and ``unique_key``. ``locked_by`` and ``locked_until`` are the lease of the worker
    running it; ``progress`` (0.0 to 1.0) and ``progress_note`` are what the running task last
    reported.

    >>> task = notify_user(42)
    >>> task.status, task.args
    ('queued', [42])
    >>> Task.objects.failed().filter(task_name="shop.tasks.send_receipt").count()
    0
    """

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    STATUS_CHOICES = [
        (QUEUED, "Queued"),
        (RUNNING, "Running"),
        (SUCCEEDED, "Succeeded"),
        (FAILED, "Failed"),
        (CANCELLED, "Cancelled"),
    ]
    #: A task in one of these states will not run again unless someone retries it.
    FINISHED_STATUSES = (SUCCEEDED, FAILED, CANCELLED)

    # Repeat intervals in seconds, as django-background-tasks spells them.
    HOURLY = 60 * 60
    DAILY = 24 * HOURLY
    WEEKLY = 7 * DAILY
    EVERY_2_WEEKS = 2 * WEEKLY
    EVERY_4_WEEKS = 4 * WEEKLY

    id = models.BigAutoField(primary_key=True)
    task_name = models.CharField(max_length=255, db_index=True)
    queue = models.CharField(max_length=100, default="default")
    priority = models.IntegerField(default=0, help_text="Higher runs first.")
    # JSON text {"args": [...], "kwargs": {...}}; text rather than JSONField so that a corrupt row
    # can be stored, read and reported instead of breaking the ORM on load.
    arguments = models.TextField(default='{"args": [], "kwargs": {}}')
    run_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default=QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    failed_at = models.DateTimeField(null=True, blank=True)
    locked_by = models.CharField(max_length=64, null=True, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # JSON text of the return value of the last successful run (null when not JSON or None).
    result = models.TextField(null=True, blank=True)
    repeat = models.PositiveIntegerField(
        default=0, help_text="Seconds between repetitions; 0: none."
    )
    repeat_until = models.DateTimeField(null=True, blank=True)
    # Set while a unique task is pending; a plain unique constraint (NULLs never collide) works on
    # every database, unlike a partial unique index, which MariaDB lacks.
    unique_key = models.CharField(max_length=255, null=True, blank=True, unique=True)
    timeout = models.FloatField(
        null=True, blank=True, help_text="Seconds before the run is stopped."
    )
    # A label for people (admin list and search); the seed's ``verbose_name=``.
    verbose_name = models.CharField(max_length=255, null=True, blank=True)
    # Attempts this task gets (``max_attempts=`` of its call or decorator); NULL: MAX_ATTEMPTS,
    # read when it fails, so changing the setting reaches tasks already queued.
    max_attempts = models.PositiveIntegerField(null=True, blank=True)
    # django.tasks rows: ``run_after`` exactly as given (NULL: not given), which ``run_at`` cannot
    # say once it holds the enqueue time. Read back by the backend only, never by a claim.
    run_after = models.DateTimeField(null=True, blank=True)
    # How far the running task says it is, 0.0 to 1.0, and a line about it; written only by the
    # lease holder (TaskStore.set_progress). NULL: the task never said.
    progress = models.FloatField(null=True, blank=True)
    progress_note = models.CharField(max_length=255, null=True, blank=True)
    # When bgtask.cancel() asked the running task to stop (its worker's heartbeat sees it within
    # BGTASK_CANCEL_CHECK_SECONDS and stops it with TaskCancelled). NULL: nobody asked.
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    # The enqueuing code's trace context (W3C traceparent/tracestate as JSON), written when the
    # OpenTelemetry integration is on, so the task's span joins the trace of the request that
    # enqueued it (bgtask.integrations.opentelemetry). NULL: none.
    trace_context = models.TextField(null=True, blank=True, editable=False)
    # The key of a keyed concurrency limit (``@background(max_running=1, max_running_key=...)``),
    # computed from the call's arguments at enqueue, so the claim can count running tasks per
    # key in SQL without running user code. NULL: the task's limit (if any) is not keyed.
    limit_key = models.CharField(max_length=255, null=True, blank=True, editable=False)

    objects = TaskQuerySet.as_manager()

    class Meta:
        db_table = "bgtask_task"
        indexes = [
            # Exactly the claim query's filter and order; partial, so history never slows it down
            # (PostgreSQL and SQLite; MariaDB gets full indexes from migration 0002).
            models.Index(
                fields=["-priority", "run_at", "id"],
                condition=Q(status="queued"),
                name="bgtask_due_idx",
            ),
            models.Index(
                fields=["queue", "-priority", "run_at", "id"],
                condition=Q(status="queued"),
                name="bgtask_due_queue_idx",
            ),
            # The due tasks of one task name, in claim order: the claim of a task name with a
            # limit (bgtask.features.limits) reads its candidates here without reading that
            # task's history. Partial: a claim's status change takes the row out and adds no
            # entry, so only an enqueue writes it (PostgreSQL and SQLite; see migration 0013).
            models.Index(
                fields=["task_name", "-priority", "run_at", "id"],
                condition=Q(status="queued"),
                name="bgtask_due_name_idx",
            ),
            # Finds expired leases without scanning history. Partial, like the next one, so that
            # no planner can mistake it for a way into queued rows: a (status, ...) index made
            # SQLite scan a million scheduled tasks for every claim.
            models.Index(
                fields=["locked_until"],
                condition=Q(status="running"),
                name="bgtask_running_lease_idx",
            ),
            # Finds history older than the retention for the pruner (bgtask.pruning) and recent
            # failures for the repeat sweep (finished_at leads). Not partial: SQLite cannot use a
            # partial index for the ORM's parameterised status filter, and finished_at is NULL
            # until a task ends, so a finished_at range never touches queued rows anyway.
            # Also the dashboard's last hour and day of outcomes (bgtask.status), read from this
            # index alone. status, queue and task_name cost next to nothing more: an outcome
            # sets finished_at, so the entry is rewritten then anyway.
            models.Index(
                fields=["finished_at", "status", "queue", "task_name"], name="bgtask_outcome_idx"
            ),
            # Failures kept until pruned: the admin's status filter (newest first), the counts
            # above the list and the failures per queue. Partial, so it changes only when a task
            # fails for good or is retried from the admin, never on the claim/success path.
            models.Index(
                fields=["id", "queue"], condition=Q(status="failed"), name="bgtask_failed_idx"
            ),
            # The same for cancelled tasks, which are counted and filtered apart from failures.
            models.Index(
                fields=["id", "queue"],
                condition=Q(status="cancelled"),
                name="bgtask_cancelled_idx",
            ),
            # Tasks waiting for a retry, by the start of their failed attempt: the dashboard's
            # "retried" and rescued figures. Partial: a first attempt never enters it.
            models.Index(
                fields=["started_at"],
                condition=Q(status="queued", attempts__gt=0),
                name="bgtask_retrying_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task_name} #{self.pk} ({self.status})"

    @classmethod
    def check(cls, **kwargs: Any) -> list[Any]:
        """Django's model checks, less ``models.W037`` for this model's own indexes.

        The conditions are deliberate: PostgreSQL and SQLite get partial indexes that match the
        claim query; on MariaDB/MySQL Django skips them and migration 0002 creates full indexes
        in their place. Django would warn once per index at every ``check`` and every worker
        start; the warning is dropped for this model only, so a user's own model with a
        conditional index still gets it, and ``SILENCED_SYSTEM_CHECKS`` stays the user's.
        """
        return [error for error in super().check(**kwargs) if error.id != "models.W037"]

    @property
    def args(self) -> list[Any]:
        """The positional arguments the function will be (or was) called with."""
        args: list[Any] = json.loads(self.arguments).get("args", [])
        return args

    @property
    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments the function will be (or was) called with."""
        kwargs: dict[str, Any] = json.loads(self.arguments).get("kwargs", {})
        return kwargs

    @property
    def return_value(self) -> Any:
        """The decoded return value of a succeeded task (``None`` when it returned nothing)."""
        return None if self.result is None else json.loads(self.result)


class PeriodicOccurrence(models.Model):
    """One row per ``@periodic`` task: the last occurrence that has been enqueued.

    ``run_batch`` advances ``last_enqueued_at`` with a conditional UPDATE (``WHERE
    last_enqueued_at = <what it read>``) in the transaction that enqueues the occurrence, so of
    several concurrent batches exactly one enqueues each occurrence.
    """

    name = models.CharField(max_length=255, primary_key=True)
    last_enqueued_at = models.DateTimeField()
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "bgtask_periodic"

    def __str__(self) -> str:
        return f"{self.name} (last {self.last_enqueued_at.isoformat()})"


class ImportedTask(models.Model):
    """A task copied from another queue's table (``manage.py import_background_tasks``): which
    source row became which bgtask task. The unique (source, source_id) pair makes a second run
    skip what the first copied, even after the copied task has finished and been pruned (hence
    ``task_id`` is a plain number, not a foreign key that pruning would cascade to)."""

    id = models.BigAutoField(primary_key=True)
    source = models.CharField(max_length=100)
    source_id = models.BigIntegerField()
    task_id = models.BigIntegerField(null=True, blank=True)
    imported_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "bgtask_imported"
        constraints = [
            models.UniqueConstraint(fields=["source", "source_id"], name="bgtask_imported_once")
        ]

    def __str__(self) -> str:
        return f"{self.source} #{self.source_id} -> task #{self.task_id}"


class QueueState(models.Model):
    """An operator's switch on one queue: while ``paused``, no worker claims its tasks.

    Written by ``bgtask.pause_queue`` / ``bgtask.resume_queue`` (the admin's dashboard and
    ``manage.py bgtask pause|resume`` call them). The claim statement reads this table itself
    (bgtask.store.dialects), so every worker on every machine obeys a pause at its next claim.
    A queue without a row is running.
    """

    name = models.CharField(max_length=100, primary_key=True)
    paused = models.BooleanField(default=False)
    paused_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "bgtask_queue_state"

    def __str__(self) -> str:
        return f"{self.name} ({'paused' if self.paused else 'running'})"


class LimitState(models.Model):
    """One row per limited scope (``"queue:payments"``, ``"task:shop.tasks.charge"``), made on
    first use. A claim of limited tasks locks the rows of its scopes first (``SELECT ... FOR
    UPDATE``; SQLite's write lock serialises them anyway), so claims of one scope take turns and
    never both see the last free slot. ``tat`` is the scope's rate state (a generic cell rate
    algorithm's "theoretical arrival time", seconds since the epoch by the database clock): the
    next start is allowed once ``tat <= now``, and each start moves it on by one interval."""

    scope = models.CharField(max_length=255, primary_key=True)
    tat = models.FloatField(default=0.0)

    class Meta:
        db_table = "bgtask_limit_state"

    def __str__(self) -> str:
        return self.scope


class WorkerBatch(models.Model):
    """The last ``run_batch`` that finished on each worker host: when, which call (its worker
    id), and its counts as JSON. One row per host, rewritten at the end of every batch
    (``TaskStore.record_batch``), so the dashboard can say when a host last drained and warn when
    that is longer ago than ``BGTASK_WORKER_STALE_AFTER``: a stopped cron looks like a quiet
    system otherwise. Rows of hosts not seen for a week are deleted when a new host appears."""

    host = models.CharField(max_length=255, primary_key=True)
    worker_id = models.CharField(max_length=64)
    finished_at = models.DateTimeField(db_index=True)
    counts = models.TextField(default="{}")

    class Meta:
        db_table = "bgtask_worker_batch"

    def __str__(self) -> str:
        return f"{self.host} (last batch {self.finished_at.isoformat()})"
