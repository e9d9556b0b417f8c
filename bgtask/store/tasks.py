"""Domain verbs over the task table: claim, record an outcome, release, rescue."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connections,
    router,
    transaction,
)
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet

from bgtask import clock, conf
from bgtask.limits import LimitSet
from bgtask.models import Task, WorkerBatch
from bgtask.store.dialects import dialect_for, exclusion

logger = logging.getLogger("bgtask.store")

ABANDONED_MESSAGE = (
    "Abandoned: the worker {worker} held this task past its lease (until {until}) without "
    "recording an outcome; it was probably killed. Counted as a failed attempt."
)
FIELD_NAMES = frozenset(f.name for f in Task._meta.concrete_fields if not f.primary_key)
# Parameters per INSERT statement: below SQLite's 32,766 and PostgreSQL's 65,535 limits.
INSERT_PARAMS = 30_000
# A worker host whose last batch is older than this is forgotten when a new host appears.
WORKER_HOST_MEMORY = timedelta(days=7)
#: The PostgreSQL channel an enqueue notifies and idle workers LISTEN on. The payload is the queue
#: when tasks of it are due now, or ``at:<run_at, microseconds since the epoch>:<queue>`` when the
#: inserted tasks of that queue are scheduled ahead (the insert trigger of migration 0014).
NOTIFY_CHANNEL = "bgtask_enqueued"
SCHEDULED_PREFIX = "at:"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# How long a write keeps retrying while SQLite reports another writer holds the lock.
SQLITE_LOCKED_PATIENCE = 60.0


def read_notification(payload: str) -> tuple[str, datetime | None]:
    """The queue a ``NOTIFY_CHANNEL`` payload names, and the ``run_at`` it announces (None: due
    now). A payload that is not of the scheduled form is a queue's name as it stands.

    >>> read_notification("at:1765152000000000:mail")
    ('mail', datetime.datetime(2025, 12, 8, 0, 0, tzinfo=datetime.timezone.utc))
    """
    if payload.startswith(SCHEDULED_PREFIX):
        micros, sep, queue = payload[len(SCHEDULED_PREFIX) :].partition(":")
        if sep and micros.isdigit():
            return queue, EPOCH + timedelta(microseconds=int(micros))
    return payload, None


def _is_sqlite_locked(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text


class TaskStore:
    """All reads and writes ``run_batch`` makes, against one database alias."""

    def __init__(self, using: str | None = None) -> None:
        self.alias = using or router.db_for_write(Task)
        self.dialect = dialect_for(self.alias)
        #: After a claim that took nothing: seconds until a limit that holds back due tasks may
        #: have room, and whether that is a rate's wait (exact) rather than a look again.
        self.held_back_for: float | None = None
        self.held_back_by_rate = False
        self._limited_first = False  # the limited and the plain claim take turns going first

    @property
    def connection(self) -> BaseDatabaseWrapper:
        return connections[self.alias]

    def _run[T](self, operation: Callable[[], T], *, reconnect: bool = True) -> T:
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
        self,
        worker_id: str,
        limit: int,
        lease_until: datetime,
        queue: str | None = None,
        *,
        limits: LimitSet | None = None,
        limited_limit: int | None = None,
    ) -> list[Task]:
        """Lock up to ``limit`` due tasks for ``worker_id`` until ``lease_until``; return them in
        the order they should run (highest priority, then oldest ``run_at``).

        ``limits`` (``bgtask.features.limits.current_limits()``): the limits to honour. Without
        any, the claim is the one statement it always was. With some, the plain claim leaves the
        limited scopes out and ``Dialect.claim_limited`` takes at most ``limited_limit`` of theirs
        (default ``limit``) in its own short transaction; the two go first in turn, so that
        neither the limited scopes nor the rest can starve the other. After the call,
        ``held_back_for`` says in how many seconds a scope that holds back due tasks may have
        room (None: nothing is held back, or something was claimed)."""
        # The claim time of the last attempt: a claim may have committed before the connection
        # dropped, and the retry hands back what it took (the rows it stamped started_at = that
        # time) instead of stranding them. Only those: with N at once, other rows locked by this
        # worker are tasks in flight.
        attempted: list[datetime] = []

        def claim_time() -> datetime:
            if attempted:
                self.release_claimed_at(worker_id, attempted[-1])
            attempted.append(clock.now(self.alias))
            return attempted[-1]

        self.held_back_for, self.held_back_by_rate = None, False
        limits = limits.for_queue(queue) if limits else None
        if not limits:
            return self._run(
                lambda: self.dialect.claim(worker_id, limit, claim_time(), lease_until, queue)
            )

        # With --queue of a limited queue every task it may take is limited: no plain claim.
        plain = queue is None or queue not in limits.queues
        excluded = exclusion(list(limits.queues), list(limits.tasks))
        limited_first = self._limited_first = not self._limited_first

        def claim_with_limits() -> list[Task]:
            now = claim_time()
            claimed: list[Task] = []
            held: tuple[float, bool] | None = None
            for part in ("limited", "plain") if limited_first else ("plain", "limited"):
                room = limit - len(claimed)
                if room <= 0:
                    break
                if part == "plain":
                    if plain:
                        claimed += self.dialect.claim(
                            worker_id, room, now, lease_until, queue, excluded
                        )
                else:
                    room = room if limited_limit is None else min(room, limited_limit)
                    if room <= 0:  # no free slot for a limited task: claimed, it would count
                        continue
                    taken, held = self.dialect.claim_limited(
                        worker_id, room, now, lease_until, queue, limits
                    )
                    claimed += taken
            if not claimed and held is not None:
                self.held_back_for, self.held_back_by_rate = held
            claimed.sort(key=lambda t: (-t.priority, t.run_at, t.id))
            return claimed

        return self._run(claim_with_limits)

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

    def release_claimed_at(self, worker_id: str, claimed_at: datetime) -> int:
        """Hand back the rows one claim of ``worker_id`` took (it stamps ``started_at`` with its
        time until the task's outcome records the real start)."""
        return (
            Task.objects.using(self.alias)
            .filter(status=Task.RUNNING, locked_by=worker_id, started_at=claimed_at)
            .update(status=Task.QUEUED, locked_by=None, locked_until=None, started_at=None)
        )

    # -- leases ----------------------------------------------------------------------------

    def renew_leases(
        self, worker_id: str, until: datetime, capped: dict[int, datetime] | None = None
    ) -> int:
        """Extend the lease of every row ``worker_id`` holds to ``until``, except the rows in
        ``capped`` (id -> the latest their lease may reach: a task near ``MAX_RUN_TIME``), which
        get their cap while it is still ahead of ``until``'s base. Returns the rows renewed."""
        capped = capped or {}
        rows = Task.objects.using(self.alias).filter(status=Task.RUNNING, locked_by=worker_id)
        renewed = (rows.exclude(id__in=list(capped)) if capped else rows).update(locked_until=until)
        now = clock.now(self.alias) if capped else None
        for task_id, cap in capped.items():
            assert now is not None  # read above, as capped is not empty
            if cap > now:
                renewed += rows.filter(id=task_id).update(locked_until=min(cap, until))
        return renewed

    def still_held(self, task_ids: list[int], worker_id: str) -> set[int]:
        """Which of ``task_ids`` are still running under ``worker_id``'s lease."""
        return set(
            Task.objects.using(self.alias)
            .filter(id__in=task_ids, status=Task.RUNNING, locked_by=worker_id)
            .values_list("id", flat=True)
        )

    # -- enqueueing --------------------------------------------------------------------------

    def insert(self, task: Task) -> Task:
        """Write one new task row (``task`` unsaved); return it with its id."""
        task.save(using=self.alias, force_insert=True)
        return task

    def insert_many(self, tasks: Sequence[Task]) -> list[Task]:
        """Write new task rows in one statement, all or none; return them with their ids."""
        with transaction.atomic(using=self.alias):
            # One statement (SQLite splits it only beyond its bound-parameter limit).
            return Task.objects.using(self.alias).bulk_create(list(tasks))

    def delete_queued_with_key(self, unique_key: str) -> int:
        """Delete the queued row holding ``unique_key`` (``unique="replace"``); the rows deleted."""
        deleted, _ = (
            Task.objects.using(self.alias)
            .filter(unique_key=unique_key, status=Task.QUEUED)
            .delete()
        )
        return deleted

    def end_repeat_chain(self, task_id: int, repeat: int) -> bool:
        """Take the repetition step off a failed repeating row (its successor carries the chain);
        False when another batch already did."""
        return bool(
            Task.objects.using(self.alias)
            .filter(pk=task_id, status=Task.FAILED, repeat=repeat)
            .update(repeat=0)
        )

    def delete_finished(
        self, task_ids: Sequence[int], statuses: Sequence[str], finished_before: datetime
    ) -> int:
        """Delete the rows of ``task_ids`` still in one of ``statuses`` and finished before
        ``finished_before`` (pruning re-checks the state in the DELETE); the rows deleted."""
        deleted, _ = (
            Task.objects.using(self.alias)
            .filter(id__in=list(task_ids), status__in=statuses, finished_at__lt=finished_before)
            .delete()
        )
        return deleted

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

    @property
    def inserts_announce_themselves(self) -> bool:
        """True where inserting a task notifies the listening workers by itself (PostgreSQL: the
        table's insert trigger), so an enqueue has nothing more to send."""
        return self.dialect.inserts_notify

    def announce(self, queues: Sequence[str]) -> None:
        """Wake the workers listening for ``queues``: ``pg_notify`` on PostgreSQL, in the caller's
        transaction (delivered only when it commits), nothing elsewhere.

        Call it after an UPDATE that made queued tasks due now (inserts announce themselves, see
        ``inserts_announce_themselves``): a retry due at once, an admin "run now".

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

    def _finish(self, task: Task, **fields: Any) -> bool:
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
        self, rows: Sequence[tuple[int, str | None, str | None, datetime, datetime]]
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
            fields: dict[str, object] = {
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

    # -- operators' actions (admin, CLI) ------------------------------------------------------

    def make_due_now(self, tasks: QuerySet[Task]) -> int:
        """Make the queued rows of ``tasks`` (a queryset) due at once; the rows changed."""
        return (
            tasks.using(self.alias).filter(status=Task.QUEUED).update(run_at=clock.now(self.alias))
        )

    def requeue(self, tasks: QuerySet[Task], statuses: Sequence[str]) -> int:
        """Put the rows of ``tasks`` in one of ``statuses`` back in the queue, due now, attempts
        reset (``last_error`` kept until the next run overwrites it); the rows changed."""
        return (
            tasks.using(self.alias)
            .filter(status__in=statuses)
            .update(
                status=Task.QUEUED,
                attempts=0,
                run_at=clock.now(self.alias),
                failed_at=None,
                finished_at=None,
                started_at=None,
                progress=None,
                progress_note=None,
                cancel_requested_at=None,
            )
        )

    # -- cancelling ---------------------------------------------------------------------------

    def cancel_queued(self, tasks: QuerySet[Task], message: str, now: datetime) -> int:
        """Cancel the still-queued rows of ``tasks`` (a ``Task`` queryset); the rows cancelled.
        The status check and the write are one conditional UPDATE."""
        return (
            tasks.using(self.alias)
            .filter(status=Task.QUEUED)
            .update(
                status=Task.CANCELLED,
                last_error=message,
                finished_at=now,
                unique_key=None,
                locked_by=None,
                locked_until=None,
            )
        )

    def request_cancel(self, task_id: int, now: datetime) -> bool:
        """Ask the running task ``task_id`` to stop (its worker sees it); False when it is not
        running."""
        return bool(
            Task.objects.using(self.alias)
            .filter(id=task_id, status=Task.RUNNING, cancel_requested_at__isnull=True)
            .update(cancel_requested_at=now)
            or Task.objects.using(self.alias).filter(id=task_id, status=Task.RUNNING).exists()
        )

    def cancel_requests(self, task_ids: Sequence[int], worker_id: str) -> set[int]:
        """Which of ``task_ids`` (running under ``worker_id``) were asked to stop."""
        if not task_ids:
            return set()
        return set(
            Task.objects.using(self.alias)
            .filter(
                id__in=list(task_ids),
                locked_by=worker_id,
                status=Task.RUNNING,
                cancel_requested_at__isnull=False,
            )
            .values_list("id", flat=True)
        )

    def mark_cancelled(
        self, task: Task, message: str, started_at: datetime, finished_at: datetime
    ) -> bool:
        """Record that a running task stopped on a cancel request; never retried."""
        return self._finish(
            task,
            status=Task.CANCELLED,
            last_error=message,
            attempts=task.attempts + 1,
            started_at=started_at,
            finished_at=finished_at,
            unique_key=None,
        )

    # -- progress -----------------------------------------------------------------------------

    def set_progress(self, task_id: int, worker_id: str, fraction: float, note: str = "") -> bool:
        """Record how far a running task is: ``fraction`` from 0.0 to 1.0, and a short ``note``
        (cut to 255 characters); ``False`` when ``worker_id`` no longer holds the task's lease
        (it finished, or was taken over), and nothing is written then.

        >>> TaskStore().set_progress(task.id, task.locked_by, 0.4, "page 4 of 10")
        True
        """
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
            raise TypeError(f"progress must be a number from 0 to 1, got {fraction!r}.")
        if not 0.0 <= fraction <= 1.0:  # NaN fails this too
            raise ValueError(f"progress must be from 0 to 1, got {fraction!r}.")
        if not isinstance(note, str):
            raise TypeError(f"a progress note must be a string, got {note!r}.")
        limit = Task._meta.get_field("progress_note").max_length
        assert limit is not None  # progress_note is a CharField with a max_length
        if len(note) > limit:
            note = note[: limit - 1] + "…"
        updated = self._run(
            lambda: (
                Task.objects.using(self.alias)
                .filter(id=task_id, status=Task.RUNNING, locked_by=worker_id)
                .update(progress=float(fraction), progress_note=note or None)
            )
        )
        return bool(updated)

    # -- batches ------------------------------------------------------------------------------

    def record_batch(
        self, host: str, worker_id: str, finished_at: datetime, counts: dict[str, object]
    ) -> bool:
        """Record that a batch of ``host`` (``worker_id``) finished at ``finished_at`` with
        ``counts`` (``BatchResult.as_dict()``), replacing that host's previous record; the
        dashboard's "last batch finished at". Housekeeping: a database error is logged and
        ``False`` returned, never raised, so it cannot fail a batch that did its work.

        >>> TaskStore().record_batch("web-1", result.worker_id, now, result.as_dict())
        True
        """
        host = host[: WorkerBatch._meta.get_field("host").max_length]
        fields = {"worker_id": worker_id, "finished_at": finished_at, "counts": json.dumps(counts)}
        rows = WorkerBatch.objects.using(self.alias)

        def write() -> None:
            if rows.filter(host=host).update(**fields):
                return
            try:
                with transaction.atomic(using=self.alias):
                    rows.create(host=host, **fields)
            except IntegrityError:  # another process of this host created it meanwhile
                rows.filter(host=host).update(**fields)
                return
            # A new host (a new Lambda environment, a new box): forget hosts long gone.
            rows.filter(finished_at__lt=finished_at - WORKER_HOST_MEMORY).delete()

        try:
            self._run(write)
        except DatabaseError as exc:
            logger.warning("Could not record the end of batch %s: %s", worker_id, exc)
            return False
        return True
