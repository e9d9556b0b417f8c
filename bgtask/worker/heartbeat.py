"""The heartbeat: a cron/CLI worker renews the lease of the tasks it holds while it is alive.

Leases are short (``BGTASK_LEASE_SECONDS``, 60 s by default), so a worker killed mid-task has its
tasks rescued within about one lease. A live worker keeps its leases with one statement for all
the rows it holds (``TaskStore.renew_leases``), issued from a daemon thread with its own
connection, and only while the lease (as last set) is older than a third of its length and a task
is running: fast tasks never cause a renewal, each claim sets a fresh lease. ``MAX_RUN_TIME``
stays the limit on how long one task may run: a renewal never extends a task's lease past its
start plus ``MAX_RUN_TIME``, so a task that runs longer loses its lease then and is rescued.

With N tasks in flight the one statement renews them all; each task's own start still caps its
lease. The same thread does two more things while the batch runs:

- **It rescues abandoned tasks** (``TaskStore.rescue_abandoned``) every half lease, so a dead
  worker's tasks are requeued within about 1.5 leases even while every live worker is busy in a
  long batch (rescue also runs at the start of every batch).
- **It stops a task whose lease is gone.** A worker frozen past its lease (SIGSTOP, a long GC pause,
  a laptop lid) finds, when it thaws, that another worker may have rescued and re-run its task.
  When a renewal comes after the lease ran out, the heartbeat asks which rows are still its own;
  for every task in flight that is not, it calls ``on_lease_lost`` and the runner stops that run
  (``TaskAbandoned``), so the two runs overlap for at most one heartbeat interval after the thaw.

A renewal that fails (the database is away) is logged once and does not touch the tasks; the
lease then simply runs out unless a later renewal succeeds. On Lambda (``lease_expires_at``)
there is no heartbeat: the lease is the invocation's deadline.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import connections

from bgtask import clock
from bgtask.store import TaskStore

logger = logging.getLogger("bgtask.heartbeat")

#: Renew once the lease, as last set, has used this fraction of its length.
RENEW_AFTER_FRACTION = 1 / 3
#: How often the thread looks, as a fraction of the lease (a look costs no statement).
CHECK_FRACTION = 1 / 10
#: Rescue abandoned tasks this often while a batch runs, as a fraction of the lease.
RESCUE_FRACTION = 1 / 2


class Heartbeat:
    """Holds the leases of one ``run_batch`` (one worker id) and renews them while tasks run.

    >>> beat = Heartbeat("default", worker_id, lease_seconds=60, max_run_time=3600)
    >>> until = beat.lease_until()      # before each claim: the lease is fresh
    >>> beat.task_started(task.id); ...; beat.task_finished(task.id)
    >>> beat.stop()
    """

    def __init__(
        self,
        alias: str,
        worker_id: str,
        *,
        lease_seconds: float,
        max_run_time: float,
        on_lease_lost: Callable[[set[int]], object] | None = None,
        on_rescued: Callable[[int], None] | None = None,
        on_cancel_requested: Callable[[set[int]], object] | None = None,
        cancel_check: float | None = None,
        renewing: bool = True,
    ) -> None:
        self.alias, self.worker_id = alias, worker_id
        self.lease_seconds = lease_seconds
        self.max_run_time = max_run_time
        self.on_lease_lost = on_lease_lost
        self.on_rescued = on_rescued
        self.on_cancel_requested = on_cancel_requested
        self.cancel_check = cancel_check  # seconds between looks for cancel requests; None: none
        self.renewing = renewing  # False: a fixed lease (Lambda's deadline), never renewed
        self._last_cancel_check = 0.0
        self.renewals = 0  # statements issued (for tests and logs)
        self.rescued = 0  # tasks this heartbeat rescued from dead workers
        # (when the current lease began (monotonic), its length): one tuple, replaced whole, so
        # the batch's thread reads a consistent pair without a lock (a share of a short task's
        # cost). _running is only changed by single dict operations and read through a copy
        # (dict() and list() of a dict are atomic under the GIL), so it needs no lock either.
        self._full_lease = min(lease_seconds, max_run_time)
        self._lease = (time.monotonic(), self._full_lease)
        self._running: dict[int, float] = {}  # task id -> monotonic start
        self._last_rescue = time.monotonic()
        self._failing = False
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._store: TaskStore | None = None  # the thread's own (its own connection)

    # -- called by run_batch ---------------------------------------------------------------

    @property
    def full_lease(self) -> float:
        """A fresh lease's length: ``BGTASK_LEASE_SECONDS``, at most ``MAX_RUN_TIME``."""
        return self._full_lease

    def lease_until(self) -> datetime:
        """The lease for a claim made now (database clock); also resets the lease's age."""
        length = self.full_lease
        until = clock.now(self.alias) + timedelta(seconds=length)
        self._lease = (time.monotonic(), length)
        return until

    def lease_left(self) -> float:
        """Seconds left of the lease as last set or renewed (local monotonic estimate)."""
        set_at, length = self._lease
        return set_at + length - time.monotonic()

    def task_started(self, task_id: int) -> None:
        # Only the monotonic clock here: this runs once per task, and the database time of the
        # start is worked out by the thread when it renews (a share of a short task's cost).
        self._running[task_id] = time.monotonic()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"bgtask-heartbeat-{self.worker_id}", daemon=True
            )
            self._thread.start()

    def task_finished(self, task_id: int) -> None:
        self._running.pop(task_id, None)

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=5 + self.lease_seconds * CHECK_FRACTION)

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        interval = max(0.05, self.lease_seconds * CHECK_FRACTION)
        if self.cancel_check is not None:
            interval = min(interval, max(0.05, self.cancel_check))
        try:
            while not self._stopped.wait(interval):
                if self.renewing and self._due():
                    self.renew()
                if self.cancel_check is not None and (
                    time.monotonic() - self._last_cancel_check >= self.cancel_check
                ):
                    self.look_for_cancels()
                if time.monotonic() - self._last_rescue >= self.lease_seconds * RESCUE_FRACTION:
                    self.rescue()
        finally:
            connections[self.alias].close()  # this thread's own connection

    def _due(self) -> bool:
        set_at, length = self._lease
        return bool(self._running) and time.monotonic() - set_at >= length * RENEW_AFTER_FRACTION

    def _drop_connection(self) -> None:
        """After a failed statement: close this thread's connection, so the next look opens a
        fresh one (a dead connection may fail to close: that is fine too)."""
        with contextlib.suppress(Exception):
            connections[self.alias].close()

    def _thread_store(self) -> TaskStore:
        if self._store is None:
            self._store = TaskStore(self.alias)
        return self._store

    def renew(self) -> int:
        """Extend the lease of every row this worker holds; return the rows renewed."""
        running = dict(self._running)
        set_at, length = self._lease
        expired = set_at + length <= time.monotonic()
        if not running:
            return 0
        try:
            # Taken first: the lease is counted from no later than this instant.
            sent = time.monotonic()
            now = clock.now(self.alias)
            until = now + timedelta(seconds=self.lease_seconds)
            # A task's start plus MAX_RUN_TIME, on the database clock: its lease stops there.
            capped = {
                task_id: now + timedelta(seconds=self.max_run_time - (sent - since))
                for task_id, since in running.items()
                if sent - since + self.lease_seconds > self.max_run_time
            }
            if len(capped) == len(running) and all(cap <= now for cap in capped.values()):
                return 0  # every task has run MAX_RUN_TIME: let the leases run out
            store = self._thread_store()
            lost: set[int] = set()
            if expired:
                # The lease ran out before this renewal (a frozen or cut-off worker): another
                # worker may have rescued some of these rows by now.
                lost = set(running) - store.still_held(list(running), self.worker_id)
            rows = store.renew_leases(self.worker_id, until, capped)
        except Exception as exc:  # the tasks must go on; the lease just is not renewed
            if not self._failing:
                logger.warning(
                    "Could not renew the lease of worker %s (%s); its tasks keep running and "
                    "the lease runs out unless a later renewal succeeds.",
                    self.worker_id,
                    " ".join(str(exc).split())[:200],
                )
            self._failing = True
            self._drop_connection()
            return 0
        self._lease = (sent, self.lease_seconds)
        if self._failing:
            logger.info("Lease of worker %s renewed again.", self.worker_id)
        self._failing = False
        self.renewals += 1
        if lost and self.on_lease_lost is not None:
            self.on_lease_lost(lost)
        logger.debug("Renewed the lease of %d task(s) until %s.", rows, until.isoformat())
        return rows

    def look_for_cancels(self) -> set[int]:
        """Ask the database which tasks in flight were asked to stop, and hand them to
        ``on_cancel_requested``; one indexed query, only while tasks run."""
        self._last_cancel_check = time.monotonic()
        running = list(self._running)
        if not running or self.on_cancel_requested is None:
            return set()
        try:
            asked = self._thread_store().cancel_requests(running, self.worker_id)
        except Exception as exc:  # the renewal reports the outage; this just looks again later
            logger.debug("Could not look for cancel requests: %s", exc)
            self._drop_connection()
            return set()
        if asked:
            self.on_cancel_requested(asked)
        return asked

    def rescue(self) -> int:
        """Requeue (or fail) other workers' tasks whose lease expired; return how many."""
        self._last_rescue = time.monotonic()
        try:
            count = self._thread_store().rescue_abandoned(on_rescued=self.on_rescued)
        except Exception as exc:  # housekeeping: the next batch or beat tries again
            logger.info("Rescue of abandoned tasks skipped: %s", " ".join(str(exc).split())[:200])
            self._drop_connection()
            return 0
        self.rescued += count
        return count
