"""What an idle worker does between two claims: wait until work may be due, not a fixed nap.

``IdleWaiter.wait(timeout, stop)`` replaces ``stop.wait(timeout)`` after a claim found nothing. It
returns early, True, as soon as work may be due:

- a task of one of its queues was enqueued in this process (``bgtask.enqueue.announce``);
- on PostgreSQL, a notification for one of its queues arrived on its own ``LISTEN`` connection
  (psycopg, opened from the same ``DATABASES`` entry, outside Django's connection handling);
  a notification for another queue does not wake it. A notification of tasks scheduled ahead
  (``at:<run_at>:<queue>``, from the insert trigger) does not wake it either: it sleeps until
  that ``run_at`` when it is sooner than the end of its wait;
- without LISTEN (SQLite, MariaDB, PgBouncer in transaction mode, ``BGTASK_LISTEN = False``): the
  highest task id changed, checked every ``BGTASK_IDLE_POLL`` seconds (a primary-key probe);
- the next scheduled task of its queues is due (``TaskStore.next_due_at``, read once per wait).

Polling stays the safety net: the caller claims again after ``timeout`` whatever happened. If the
LISTEN connection drops, the waiter polls until it is back (reconnecting with backoff), and wakes
once when it is, since notifications sent meanwhile are lost.

>>> waiter = IdleWaiter(queues=["mail"])
>>> while not stop.is_set():
...     if run_batch(60, queue="mail", stop=stop).ran == 0:
...         waiter.wait(5.0, stop)
>>> waiter.close()
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
import weakref
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, connections, router

from bgtask import clock, conf
from bgtask.enqueue.announce import LocalWake, register, unregister
from bgtask.models import Task
from bgtask.store import TaskStore
from bgtask.store.tasks import NOTIFY_CHANNEL, read_notification

try:  # only PostgreSQL deployments have psycopg; the others never LISTEN
    import psycopg
except ImportError:  # pragma: no cover - psycopg is installed wherever PostgreSQL is used
    psycopg = None  # type: ignore[assignment]

logger = logging.getLogger("bgtask.worker.idle")

#: How often a wait looks at ``stop`` (set by a signal handler, which cannot ring our event).
STOP_CHECK_SECONDS = 0.05
#: Reconnecting a dropped LISTEN connection: first wait, doubled up to the cap.
RECONNECT_FIRST_WAIT = 0.5
RECONNECT_MAX_WAIT = 30.0
#: How long "auto" waits for its test notification before deciding LISTEN does not work here.
PROBE_SECONDS = 2.0
#: Without LISTEN, no poll starts this close before the due time the wait ends at.
POLL_GUARD_SECONDS = 0.1
#: ``application_name`` of a LISTEN connection once it is known to work.
APPLICATION_NAME = "bgtask idle worker (listening)"
#: How long the listening thread blocks on the connection before looking at ``closed`` again.
LISTEN_SLICE_SECONDS = 1.0


class Listener(threading.Thread):
    """A daemon thread holding a dedicated LISTEN connection; rings ``wake`` on a notification
    for one of ``serves`` (None: every queue), and once after each (re)connection; tells it the
    ``run_at`` of tasks scheduled ahead."""

    def __init__(
        self,
        params: dict[str, Any],
        serves: frozenset[str] | None,
        wake: LocalWake,
        probe: bool,
    ) -> None:
        super().__init__(name="bgtask-listen", daemon=True)
        self.params, self.serves, self.wake, self.probe = params, serves, wake, probe
        self.listening = threading.Event()  # set while notifications can arrive
        self.given_up = threading.Event()  # "auto" found that notifications do not arrive
        self.closed = threading.Event()
        self.connects = 0  # successful LISTENs so far (the tests watch it)
        self.connection: Any = None  # a psycopg Connection while listening

    def run(self) -> None:
        wait = RECONNECT_FIRST_WAIT
        while not self.closed.is_set():
            try:
                self._listen()
                wait = RECONNECT_FIRST_WAIT
            except psycopg.Error as exc:
                if self.listening.is_set():
                    logger.warning(
                        "The LISTEN connection was lost (%s); polling until it is back.",
                        " ".join(str(exc).split())[:200],
                    )
                else:
                    logger.debug("LISTEN connection failed: %s", exc)
                self.listening.clear()
                self._close_connection()
                self.closed.wait(wait)
                wait = min(wait * 2, RECONNECT_MAX_WAIT)
            if self.given_up.is_set():
                return

    def _listen(self) -> None:
        with psycopg.connect(**self.params, autocommit=True) as conn:
            self.connection = conn
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            if self.probe and not self._probe_arrives(conn):
                logger.warning(
                    "A test notification sent to the database did not reach this worker's LISTEN "
                    "connection (PgBouncer in transaction mode?); polling every %.2f s instead. "
                    "Set BGTASK_LISTEN = False to skip this test, or True to trust LISTEN.",
                    conf.idle_poll(),
                )
                self.given_up.set()
                return
            # Named, so operators (and the tests) see in pg_stat_activity which backends are
            # idle workers listening, and since when.
            conn.execute("SELECT set_config('application_name', %s, false)", [APPLICATION_NAME])
            self.connects += 1
            self.listening.set()
            logger.debug("Listening for enqueues (connection %d).", self.connects)
            # Anything enqueued before LISTEN took effect was not announced to us: look once.
            self.wake.ring()
            while not self.closed.is_set():
                for note in conn.notifies(timeout=LISTEN_SLICE_SECONDS):
                    if note.payload.startswith("probe:"):
                        continue
                    queue, run_at = read_notification(note.payload)
                    if self.serves is not None and queue not in self.serves:
                        logger.debug("Notified of queue %r, not one of ours.", queue)
                    elif run_at is None:
                        logger.debug("Notified of queue %r: waking.", queue)
                        self.wake.ring([queue])
                    else:
                        logger.debug("Notified of queue %r, due at %s.", queue, run_at)
                        self.wake.learn(queue, run_at)
                if conn.closed or conn.broken:
                    raise psycopg.OperationalError("the LISTEN connection closed")

    def _probe_arrives(self, conn: Any) -> bool:
        """Send a notification from a second connection; True if this one receives it."""
        token = f"probe:{secrets.token_hex(8)}"
        with psycopg.connect(**self.params, autocommit=True) as sender:
            sender.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, token])
        deadline = time.monotonic() + PROBE_SECONDS
        while (remaining := deadline - time.monotonic()) > 0:
            for note in conn.notifies(timeout=remaining):
                if note.payload == token:
                    return True
        return False

    def _close_connection(self) -> None:
        conn, self.connection = self.connection, None
        if conn is not None:
            with contextlib.suppress(Exception):  # a dead connection may fail to close
                conn.close()


class IdleWaiter:
    """Wait after an empty claim until work may be due; see the module docstring.

    ``queues``: the queues the worker serves (None: all). ``listen``: ``BGTASK_LISTEN`` by default.
    """

    def __init__(
        self,
        queues: Collection[str] | None = None,
        using: str | None = None,
        listen: bool | str | None = None,
    ) -> None:
        self.alias = using or router.db_for_write(Task)
        self.serves = None if queues is None else frozenset(queues)
        self.store = TaskStore(self.alias)
        self.local = LocalWake(self.serves)
        register(self.local)
        self.listen = conf.listen() if listen is None else listen
        self.listener: Listener | None = None
        self._last_id: int | None = None
        self._slept_until: datetime | None = None  # the run_at the last wait slept until
        # A worker that forgets close() (process_tasks simply drops its waiter) still stops
        # listening and leaves the registry when the waiter is collected.
        self._listeners: list[Listener] = []
        self._finalizer = weakref.finalize(self, _shut_down, self.local, self._listeners)

    # -- the listening connection ------------------------------------------------------------

    def _can_listen(self) -> bool:
        return (
            self.listen is not False
            and psycopg is not None
            and connections[self.alias].vendor == "postgresql"
        )

    def _ensure_listener(self) -> Listener | None:
        if self.listener is None and self._can_listen():
            params = connections[self.alias].get_connection_params()
            self.listener = Listener(params, self.serves, self.local, probe=self.listen == "auto")
            self._listeners.append(self.listener)
            self.listener.start()
        return self.listener

    @property
    def listening(self) -> bool:
        """True while notifications can wake this waiter (else it polls)."""
        return self.listener is not None and self.listener.listening.is_set()

    # -- waiting -----------------------------------------------------------------------------

    def _next_due(self) -> tuple[datetime, float, bool] | None:
        """The next scheduled task's ``run_at`` among our queues, the ``time.monotonic()`` at
        which to claim it, and whether that is still ahead; None when none is scheduled."""
        after = clock.now(self.alias)
        retry, self._slept_until = self._slept_until, None
        if retry is not None and retry <= after:
            # The last wait slept until this run_at, yet the claim found nothing (the claim read
            # the clock a hair early): ask again from just before it, once, rather than leaving
            # it to the end of the nap. Once only: a task held back (a paused queue) must not
            # keep the worker spinning.
            after = retry - timedelta(microseconds=1)
        if self.serves is None or len(self.serves) != 1:
            due = self.store.next_due_at(None, after=after)
        else:
            (queue,) = self.serves
            due = self.store.next_due_at(queue, after=after)
        if due is None:
            return None
        return (due, *self._deadline(due))

    def _deadline(self, due: datetime) -> tuple[float, bool]:
        """The ``time.monotonic()`` at which to claim a task due at ``due`` (a database time),
        and whether that is still ahead."""
        # Measured after the query, which can take a while on a loaded server: measured before,
        # the worker would wake that much early. A millisecond late rather than a moment early.
        seconds = (due - clock.now(self.alias)).total_seconds() + 0.001
        return time.monotonic() + max(0.0, seconds), seconds > 0

    def _inserted(self) -> bool:
        """True if a task was inserted since the last look (the poll without LISTEN)."""
        latest = self.store.latest_id()
        changed = self._last_id is not None and latest != self._last_id
        self._last_id = latest
        return changed

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        """Wait up to ``timeout`` seconds; True as soon as work may be due, False on timeout or
        when ``stop`` is set. Database errors end the wait early (True): the caller's claim
        then meets the outage and handles it as it does any other."""
        started = time.monotonic()
        end = started + max(0.0, timeout)
        self._ensure_listener()
        local = self.local
        learnt: datetime | None = None
        if local.event.is_set():
            rung, learnt = local.take()
            if rung:
                return True
        try:
            if not self.listening and self._last_id is None:
                # The first baseline for the polls: a task inserted between the caller's last
                # claim and this read would be in it, unseen. Claim once more to be sure. Later
                # baselines carry over from wait to wait, so nothing slips between them.
                self._inserted()
                return True
            next_due = self._next_due()
            if learnt is not None:
                # Learnt during the last claim: usually the read above has it too, but not once
                # it is due (the read leaves due tasks out), so it is taken as it stands.
                learnt_due = (learnt, *self._deadline(learnt))
                if next_due is None or learnt_due[1] < next_due[1]:
                    next_due = learnt_due
        except DatabaseError:
            return True
        due: datetime | None = None
        due_at: float | None = None
        ahead = False
        if next_due is not None and next_due[1] <= end:
            due, due_at, ahead = next_due
            end = due_at
        next_poll = started + conf.idle_poll()
        while True:
            now = time.monotonic()
            if now >= end:
                if due_at is None:
                    return False
                if ahead:  # slept until it (it was not due already when asked)
                    self._slept_until = due
                return True
            slice_end = min(end, now + STOP_CHECK_SECONDS)
            if not self.listening:
                slice_end = min(slice_end, next_poll)
            if local.event.wait(max(0.0, slice_end - now)):
                rung, learnt = local.take()
                if rung:
                    return True
                if learnt is not None:
                    # A task scheduled ahead was inserted: sleep until it if it comes first.
                    try:
                        learnt_at, learnt_ahead = self._deadline(learnt)
                    except DatabaseError:
                        return True
                    if learnt_at < end:
                        due, due_at, ahead, end = learnt, learnt_at, learnt_ahead, learnt_at
            if stop.is_set():
                return False
            if not self.listening and time.monotonic() >= next_poll:
                next_poll = time.monotonic() + conf.idle_poll()
                if due_at is not None and end - time.monotonic() < POLL_GUARD_SECONDS:
                    # The claim at the due time comes first and finds what this poll would
                    # (it claims every due task). A poll now would only delay that claim by its
                    # own round trip, which under load was the scheduled tasks' lateness tail
                    # on MariaDB.
                    continue
                try:
                    if self._inserted():
                        logger.debug("New task(s) inserted: waking.")
                        return True
                except DatabaseError:
                    return True

    def close(self) -> None:
        """Stop listening and forget this waiter (call when the worker ends)."""
        self.listener = None
        self._finalizer()


def _shut_down(local: LocalWake, listeners: list[Listener]) -> None:
    unregister(local)
    for listener in listeners:
        listener.closed.set()
    for listener in listeners:
        listener.join(timeout=LISTEN_SLICE_SECONDS * 3)
