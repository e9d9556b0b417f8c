"""The heartbeat: a cron/CLI worker renews the lease of the tasks it holds while it is alive.

Leases are short (``BGTASK_LEASE_SECONDS``, 60 s by default), so a worker killed mid-task has its
task rescued within about one lease. A live worker keeps its lease with one statement for all
the rows it holds::

    UPDATE bgtask_task SET locked_until = <database now + lease>
    WHERE status = 'running' AND locked_by = <this batch's worker id>

issued from a daemon thread with its own connection, and only while the lease (as last set) is
older than a third of its length and a task is running: fast tasks never cause a renewal, each
claim sets a fresh lease. ``MAX_RUN_TIME`` stays the limit on how long one task may run: a
renewal never extends the lease past the running task's start plus ``MAX_RUN_TIME``, so a task
that runs longer loses its lease then and is rescued as before.

A renewal that fails (the database is away) is logged once and does not touch the task; the
lease then simply runs out unless a later renewal succeeds. On Lambda (``lease_expires_at``)
there is no heartbeat: the lease is the invocation's deadline.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from datetime import datetime, timedelta

from django.db import connections

from bgtask import clock
from bgtask.models import Task

logger = logging.getLogger("bgtask.heartbeat")

#: Renew once the lease, as last set, has used this fraction of its length.
RENEW_AFTER_FRACTION = 1 / 3
#: How often the thread looks, as a fraction of the lease (a look costs no statement).
CHECK_FRACTION = 1 / 10


class Heartbeat:
    """Holds the lease of one ``run_batch`` (one worker id) and renews it while a task runs.

    >>> beat = Heartbeat("default", worker_id, lease_seconds=60, max_run_time=3600)
    >>> beat.claimed()                  # before each claim: the lease is fresh
    >>> beat.task_started(); ...; beat.task_finished()
    >>> beat.stop()
    """

    def __init__(
        self, alias: str, worker_id: str, *, lease_seconds: float, max_run_time: float
    ) -> None:
        self.alias, self.worker_id = alias, worker_id
        self.lease_seconds = lease_seconds
        self.max_run_time = max_run_time
        self.renewals = 0  # statements issued (for tests and logs)
        self._lock = threading.Lock()
        self._lease_set_at = time.monotonic()  # when the current lease began (monotonic)
        self._lease_length = min(lease_seconds, max_run_time)
        self._task_since: float | None = None  # monotonic start of the running task
        self._failing = False
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    # -- called by run_batch ---------------------------------------------------------------

    @property
    def full_lease(self) -> float:
        """A fresh lease's length: ``BGTASK_LEASE_SECONDS``, at most ``MAX_RUN_TIME``."""
        return min(self.lease_seconds, self.max_run_time)

    def lease_until(self) -> datetime:
        """The lease for a claim made now (database clock); also resets the lease's age."""
        length = self.full_lease
        until = clock.now(self.alias) + timedelta(seconds=length)
        with self._lock:
            self._lease_set_at, self._lease_length = time.monotonic(), length
        return until

    def lease_left(self) -> float:
        """Seconds left of the lease as last set or renewed (local monotonic estimate)."""
        with self._lock:
            return self._lease_set_at + self._lease_length - time.monotonic()

    def task_started(self) -> None:
        # Only the monotonic clock here: this runs once per task, and the database time of the
        # start is worked out by the thread when it renews (a share of a short task's cost).
        with self._lock:
            self._task_since = time.monotonic()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"bgtask-heartbeat-{self.worker_id}", daemon=True
            )
            self._thread.start()

    def task_finished(self) -> None:
        with self._lock:
            self._task_since = None

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=5 + self.lease_seconds * CHECK_FRACTION)

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        interval = max(0.05, self.lease_seconds * CHECK_FRACTION)
        try:
            while not self._stopped.wait(interval):
                if self._due():
                    self.renew()
        finally:
            connections[self.alias].close()  # this thread's own connection

    def _due(self) -> bool:
        with self._lock:
            running = self._task_since is not None
            age = time.monotonic() - self._lease_set_at
        return running and age >= self._lease_length * RENEW_AFTER_FRACTION

    def renew(self) -> int:
        """Extend the lease of every row this worker holds; return the rows renewed."""
        with self._lock:
            since = self._task_since
        if since is None:
            return 0
        try:
            # Taken first: the lease is counted from no later than this instant.
            sent = time.monotonic()
            now = clock.now(self.alias)
            # The task's start plus MAX_RUN_TIME, on the database clock.
            limit = now + timedelta(seconds=self.max_run_time - (sent - since))
            until = min(now + timedelta(seconds=self.lease_seconds), limit)
            length = (until - now).total_seconds()
            if length <= 0:
                return 0  # the task has run MAX_RUN_TIME: let the lease run out
            rows = (
                Task.objects.using(self.alias)
                .filter(status=Task.RUNNING, locked_by=self.worker_id)
                .update(locked_until=until)
            )
        except Exception as exc:  # the task must go on; the lease just is not renewed
            if not self._failing:
                logger.warning(
                    "Could not renew the lease of worker %s (%s); its tasks keep running and "
                    "the lease runs out unless a later renewal succeeds.",
                    self.worker_id,
                    " ".join(str(exc).split())[:200],
                )
            self._failing = True
            with contextlib.suppress(Exception):  # a dead connection may fail to close
                connections[self.alias].close()
            return 0
        with self._lock:
            self._lease_set_at, self._lease_length = sent, length
        if self._failing:
            logger.info("Lease of worker %s renewed again.", self.worker_id)
        self._failing = False
        self.renewals += 1
        logger.debug("Renewed the lease of %d task(s) until %s.", rows, until.isoformat())
        return rows
