"""Short leases, renewed while a task runs, so a dead worker's task is rescued in about a minute.

A cron or ``process_tasks`` worker claims tasks with a lease of ``BGTASK_LEASE_SECONDS`` (at most
``MAX_RUN_TIME``). While one of its tasks has been running for a third of a lease, a daemon thread
renews the lease of every row the worker holds (the running task, the claimed ones waiting behind
it, and successes not yet written) in one ``UPDATE``, every third of a lease. Short tasks never
trigger a renewal, so the heartbeat costs nothing on the fast path; a long task costs one statement
per worker every few seconds, never one per task.

``MAX_RUN_TIME`` stays the limit on how long a task may run: once the running task has run that
long, the heartbeat stops renewing, its lease runs out, and the next batch rescues it as abandoned.

A Lambda invocation does not use this: its lease is its hard deadline plus a grace.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from django.db import connections

logger = logging.getLogger("bgtask.heartbeat")


class Heartbeat:
    """Renews the leases of ``worker_id`` while a task of it runs longer than a third of a lease.

    >>> beat = Heartbeat("default", worker_id, lease_seconds=60, max_run_time=3600)
    >>> beat.claimed()            # a new claim was just made with a fresh lease
    >>> beat.task_started(); ...; beat.task_finished()
    >>> beat.stop()
    """

    def __init__(self, alias: str, worker_id: str, lease_seconds: float, max_run_time: float):
        self.alias = alias
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.max_run_time = max_run_time
        self.renew_after = lease_seconds / 3
        self.renewed_at = time.monotonic()  # when the leases we hold were last set or renewed
        self.renewals = 0
        self._task_started: float | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self._overran_logged = False

    # -- called by run_batch, in the worker's thread ----------------------------------------------

    def claimed(self) -> None:
        self.renewed_at = time.monotonic()

    def lease_left(self) -> float:
        """Seconds our leases have left, as far as this process knows."""
        return self.lease_seconds - (time.monotonic() - self.renewed_at)

    def task_started(self) -> None:
        self._task_started = time.monotonic()
        if self._thread is None:
            # Started with the first task, not the batch: an empty poll costs no thread.
            self._thread = threading.Thread(
                target=self._beat, name=f"bgtask-heartbeat-{self.worker_id}", daemon=True
            )
            self._thread.start()

    def task_finished(self) -> None:
        self._task_started = None

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()

    # -- the heartbeat thread ----------------------------------------------------------------

    def _beat(self) -> None:
        try:
            # Checking twice per renewal interval bounds the first renewal at half a lease.
            while not self._stopping.wait(self.renew_after / 2):
                started = self._task_started
                if started is None:
                    continue
                now = time.monotonic()
                running_for = now - started
                if running_for < self.renew_after or now - self.renewed_at < self.renew_after:
                    continue
                if running_for >= self.max_run_time:
                    if not self._overran_logged:
                        self._overran_logged = True
                        logger.warning(
                            "Worker %s: a task has run %.0f s, MAX_RUN_TIME; its lease is no "
                            "longer renewed, so it will be taken as abandoned and rescued.",
                            self.worker_id,
                            running_for,
                        )
                    continue
                self._renew(now)
        finally:
            # The thread's own connection; the worker's thread keeps its own.
            connections[self.alias].close()

    def _renew(self, now: float) -> None:
        from bgtask import clock
        from bgtask.store import TaskStore

        try:
            until = clock.now(self.alias) + timedelta(seconds=self.lease_seconds)
            TaskStore(self.alias).renew_leases(self.worker_id, until)
        except Exception as exc:  # a failed renewal must never touch the running task
            if not self._failing:
                self._failing = True
                logger.warning(
                    "Worker %s could not renew its leases (%s); its tasks may be rescued by "
                    "another worker if this lasts %.0f s.",
                    self.worker_id,
                    " ".join(str(exc).split())[:200],
                    self.lease_left(),
                )
            return
        if self._failing:
            self._failing = False
            logger.info("Worker %s renews its leases again.", self.worker_id)
        self.renewed_at = now
        self.renewals += 1
