"""Domain verbs over the task table: claim, record an outcome, release, rescue."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from django.db import InterfaceError, OperationalError, connections, router, transaction

from bgtask import clock, conf
from bgtask.models import Task
from bgtask.store.dialects import dialect_for

logger = logging.getLogger("bgtask.store")

ABANDONED_MESSAGE = (
    "Abandoned: the worker {worker} held this task past its lease (until {until}) without "
    "recording an outcome; it was probably killed. Counted as a failed attempt."
)
FIELD_NAMES = frozenset(f.name for f in Task._meta.concrete_fields if not f.primary_key)
# Parameters per INSERT statement: below SQLite's 32,766 and PostgreSQL's 65,535 limits.
INSERT_PARAMS = 30_000
#: The PostgreSQL channel an enqueue notifies (payload: the queue) and idle workers LISTEN on.
NOTIFY_CHANNEL = "bgtask_enqueued"
# How long a write keeps retrying while SQLite reports another writer holds the lock.
SQLITE_LOCKED_PATIENCE = 60.0


def _is_sqlite_locked(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text


class TaskStore:
    """All reads and writes ``run_batch`` makes, against one database alias."""

    def __init__(self, using: str | None = None) -> None:
        self.alias = using or router.db_for_write(Task)
        self.dialect = dialect_for(self.alias)

    @property
    def connection(self):
        return connections[self.alias]

    def _run(self, operation, *, reconnect: bool = True):
        """Run ``operation()``, riding out SQLite lock contention and one dropped connection.

        "database is locked" never reaches the user: another process holding SQLite's single write
        lock is waited out. A connection the server dropped is reopened once, unless we are inside
        a caller's transaction, where reconnecting would silently lose their work.
        """
        waited_since = time.monotonic()
        delay = 0.005
        reconnected, lost = False, ""
        while True:
            try:
                value = operation()
                if reconnected:
                    # Logged only once the reconnect worked: in an outage the caller reports the
                    # failure once, instead of a line here for every attempt.
                    logger.warning("Database connection was lost (%s); reconnected.", lost)
                return value
            except (OperationalError, InterfaceError) as exc:
                conn = self.connection
                if conn.vendor == "sqlite" and _is_sqlite_locked(exc):
                    if time.monotonic() - waited_since > SQLITE_LOCKED_PATIENCE:
                        raise
                    time.sleep(delay)
                    delay = min(delay * 2, 0.25)
                    continue
                if reconnected or not reconnect or conn.in_atomic_block:
                    raise
                lost = " ".join(str(exc).split())[:200]
                with contextlib.suppress(Exception):  # a dead connection may fail to close
                    conn.close()
                reconnected = True

    # -- claiming ---------------------------------------------------------------------------

    def rescue_abandoned(
        self, now: datetime | None = None, on_rescued: Callable[[int], None] | None = None
    ) -> int:
        """Requeue (or fail, when out of attempts) running tasks whose lease has expired.

        ``on_rescued(task_id)`` is called after the writes for each task this call rescued (the
        features use it to send ``task_retried``/``task_failed``)."""
        now = now or clock.now(self.alias)
        max_attempts = conf.max_attempts()
        rescued_ids: list[int] = []

        def rescue() -> int:
            rescued = 0
            for task in (
                Task.objects.using(self.alias)
                .abandoned(now)
                .only("id", "attempts", "locked_by", "locked_until", "max_attempts")
            ):
                attempts = task.attempts + 1
                message = ABANDONED_MESSAGE.format(worker=task.locked_by, until=task.locked_until)
                fields = {
                    "attempts": attempts,
                    "last_error": message,
                    "locked_by": None,
                    "locked_until": None,
                }
                # A task's own max_attempts (bgtask.retry_policy) counts here too.
                limit = task.max_attempts if task.max_attempts is not None else max_attempts
                if attempts >= limit:
                    fields.update(
                        status=Task.FAILED, failed_at=now, finished_at=now, unique_key=None
                    )
                else:
                    fields.update(status=Task.QUEUED)
                # Guarded by the old lease: if another worker rescued it first, this is a no-op.
                updated = (
                    Task.objects.using(self.alias)
                    .filter(
                        id=task.id,
                        status=Task.RUNNING,
                        locked_by=task.locked_by,
                        locked_until=task.locked_until,
                    )
                    .update(**fields)
                )
                rescued += updated
                if updated:
                    rescued_ids.append(task.id)
            return rescued

        count = self._run(rescue)
        if count:
            logger.warning("Rescued %d abandoned task(s) whose lease had expired.", count)
        if on_rescued is not None:
            for task_id in rescued_ids:
                on_rescued(task_id)
        return count

    def claim_due(
        self, worker_id: str, limit: int, lease_until: datetime, queue: str | None = None
    ) -> list[Task]:
        """Lock up to ``limit`` due tasks for ``worker_id`` until ``lease_until``; return them in
        the order they should run (highest priority, then oldest ``run_at``)."""
        attempt = {"n": 0}

        def claim() -> list[Task]:
            attempt["n"] += 1
            if attempt["n"] > 1:
                # A claim may have committed before the connection dropped; hand back anything
                # locked to us (we run nothing while claiming) instead of stranding it.
                self.release_all(worker_id)
            return self.dialect.claim(worker_id, limit, clock.now(self.alias), lease_until, queue)

        return self._run(claim)

    def release(self, task_ids: list[int], worker_id: str) -> int:
        """Put claimed but unstarted tasks back, claimable at once by anyone."""
        if not task_ids:
            return 0
        return self._run(
            lambda: (
                Task.objects.using(self.alias)
                .filter(id__in=task_ids, status=Task.RUNNING, locked_by=worker_id)
                .update(status=Task.QUEUED, locked_by=None, locked_until=None, started_at=None)
            )
        )

    def release_all(self, worker_id: str) -> int:
        return (
            Task.objects.using(self.alias)
            .filter(status=Task.RUNNING, locked_by=worker_id)
            .update(status=Task.QUEUED, locked_by=None, locked_until=None, started_at=None)
        )

    # -- enqueueing --------------------------------------------------------------------------

    def insert_rows(self, rows: Sequence[dict[str, object]]) -> int:
        """Insert many new tasks, all or none, a few large INSERT statements in one transaction.

        ``rows`` are field values as ``TaskFunction.build_row`` returns them (already validated);
        every row must name the same fields. Fields a row leaves out get the model's default,
        computed once for the whole call (so the rows share one ``created_at``). Faster than
        ``bulk_create``, which prepares every field of every row through the ORM.

        >>> TaskStore().insert_rows([send_mail.build_row([i], {}, None, None, None) for i in ids])
        1000
        """
        if not rows:
            return 0
        names = tuple(rows[0])
        unknown = set(names) - FIELD_NAMES
        if unknown:
            raise ValueError(f"Task has no field(s) {', '.join(sorted(unknown))}.")
        defaults = {
            field.name: field.get_default()
            for field in Task._meta.concrete_fields
            if not field.primary_key
            and field.name not in names
            and (field.has_default() or not field.null)
        }
        all_names = (*names, *defaults)
        constant = tuple(defaults.values())
        values = []
        for row in rows:
            if len(row) != len(names) or any(name not in row for name in names):
                raise ValueError(
                    f"Every row must name the same fields as the first ({', '.join(names)}); "
                    f"got {', '.join(row)}."
                )
            values.append((*(row[name] for name in names), *constant))
        limit = min(INSERT_PARAMS, self.connection.features.max_query_params or INSERT_PARAMS)
        per_statement = max(1, limit // len(all_names))
        with transaction.atomic(using=self.alias):
            for start in range(0, len(values), per_statement):
                self.dialect.insert(all_names, values[start : start + per_statement])
        return len(values)

    # -- waking idle workers ------------------------------------------------------------------

    def announce(self, queues: Sequence[str]) -> None:
        """Wake the workers listening for ``queues``: ``pg_notify`` on PostgreSQL, in the caller's
        transaction (delivered only when it commits), nothing elsewhere.

        Call it after writing tasks that are due now by any path other than an enqueue (which
        announces itself): a retry due at once, an admin "run now".

        >>> TaskStore().announce(["default"])
        """
        if queues:
            self.dialect.notify(NOTIFY_CHANNEL, queues)

    def next_due_at(
        self, queue: str | None = None, after: datetime | None = None
    ) -> datetime | None:
        """When the next queued task (of ``queue``) becomes due: the earliest ``run_at`` later
        than ``after`` (default: now, by the database clock), or None when none is scheduled.

        Tasks already due are left out: one still queued after a claim is held back (a paused
        queue, a concurrency limit), and an idle worker must not spin on it."""
        after = after or clock.now(self.alias)
        return self._run(lambda: self.dialect.next_due_after(after, queue))

    def latest_id(self) -> int:
        """The highest task id, 0 when the table is empty (one primary-key probe)."""
        return self._run(self.dialect.latest_id)

    # -- outcomes ---------------------------------------------------------------------------

    def _finish(self, task: Task, **fields) -> bool:
        """Write an outcome if ``task`` is still ours; False when the lease was lost meanwhile."""
        fields.setdefault("locked_by", None)
        fields.setdefault("locked_until", None)
        updated = self._run(lambda: self.dialect.finish(task.id, task.locked_by, fields))
        if not updated:
            self.log_lost_lease(task)
        return bool(updated)

    def log_lost_lease(self, task: Task) -> None:
        logger.warning(
            "Task %s #%s: lease lost before its outcome was written (it ran past its lease "
            "and was taken over, or was deleted); this outcome is discarded.",
            task.task_name,
            task.id,
        )

    def mark_succeeded_many(
        self, rows: Sequence[tuple[int, str, str | None, datetime, datetime]]
    ) -> set[int]:
        """Record many successes in one guarded statement; return the ids written.

        ``rows`` are ``(id, locked_by, result, started_at, finished_at)``; a row is written only
        while it is still ``running`` under that ``locked_by``. One task's success is written with
        the single-row statement, which is what a group of one costs anyway.
        """
        if not rows:
            return set()
        if len(rows) == 1:
            task_id, locked_by, result, started_at, finished_at = rows[0]
            fields = {
                "status": Task.SUCCEEDED,
                "result": result,
                "started_at": started_at,
                "finished_at": finished_at,
                "unique_key": None,
                "locked_by": None,
                "locked_until": None,
            }
            updated = self._run(lambda: self.dialect.finish(task_id, locked_by, fields))
            return {task_id} if updated else set()
        return self._run(lambda: self.dialect.finish_successes(rows))

    def mark_succeeded(
        self, task: Task, result: str | None, started_at: datetime, finished_at: datetime
    ) -> bool:
        return self._finish(
            task,
            status=Task.SUCCEEDED,
            result=result,
            started_at=started_at,
            finished_at=finished_at,
            unique_key=None,
        )

    def mark_retry(
        self, task: Task, error: str, attempts: int, run_at: datetime, started_at: datetime
    ) -> bool:
        return self._finish(
            task,
            status=Task.QUEUED,
            last_error=error,
            attempts=attempts,
            run_at=run_at,
            started_at=started_at,
        )

    def mark_failed(
        self, task: Task, error: str, attempts: int, started_at: datetime, finished_at: datetime
    ) -> bool:
        return self._finish(
            task,
            status=Task.FAILED,
            last_error=error,
            attempts=attempts,
            started_at=started_at,
            finished_at=finished_at,
            failed_at=finished_at,
            unique_key=None,
        )
