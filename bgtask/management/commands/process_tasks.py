"""``manage.py process_tasks``: call run_batch again and again for ``--duration`` seconds.

From crontab, ``process_tasks --duration 55`` every minute gives a worker that is always
restarted, never leaks, and needs no supervisor. ``--concurrency N`` runs up to N tasks at once.
SIGTERM or SIGINT: the tasks in flight finish, the tasks claimed but not started are released,
and the command exits 0.

A clean exit (SIGTERM, or the end of ``--duration``) during an outage first tries, for up to
``BGTASK_EXIT_GRACE`` seconds, to write what it owes the database (outcomes of tasks that ran,
claims to hand back). What it still cannot write is logged: those tasks stay ``running`` until
their lease ends, then are rescued (a success not written runs again; the attempt is counted).

A database outage does not end it: it logs one WARNING, retries with capped backoff, logs one
INFO when the database is back, and still stops on a signal or at the end of ``--duration``
(exit 0). A database error that waiting cannot fix (wrong password, missing table) ends it with
one line and exit code 1.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, InterfaceError, OperationalError, router

from bgtask import conf
from bgtask.enqueue.validation import check_queue
from bgtask.models import Task
from bgtask.store import TaskStore
from bgtask.worker.batch import run_batch
from bgtask.worker.completer import OWED, Completer
from bgtask.worker.idle import IdleWaiter
from bgtask.worker.outages import first_line, is_outage, unavailable
from bgtask.worker.stopping import SignalStop

logger = logging.getLogger("bgtask.process_tasks")

# In "forever" mode each run_batch gets this budget, so settings and leases are refreshed often.
FOREVER_SLICE_SECONDS = 300.0
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
# While the database is unavailable: wait this long before the first retry, doubling up to the cap.
OUTAGE_FIRST_WAIT = 0.5
OUTAGE_MAX_WAIT = 10.0  # a reconnect attempt is cheap; the workers notice a return within 10 s


class Outage:
    """One WARNING when the database is lost, one INFO when it is back, and the backoff between
    retries (0.5 s doubling to 10 s)."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.wait = OUTAGE_FIRST_WAIT
        self.attempts = 0

    def lost(self, error: BaseException) -> float:
        """Note a failed attempt; return how long to wait before the next."""
        self.attempts += 1
        if self.since is None:
            self.since = time.monotonic()
            self.wait = OUTAGE_FIRST_WAIT
            logger.warning(
                "%s. Not running tasks; retrying with backoff (%.1f s doubling to %.0f s).",
                str(error).rstrip("."),
                OUTAGE_FIRST_WAIT,
                OUTAGE_MAX_WAIT,
            )
        else:
            logger.debug("Database still unavailable (attempt %d): %s", self.attempts, error)
        wait, self.wait = self.wait, min(self.wait * 2, OUTAGE_MAX_WAIT)
        return wait

    def back(self) -> None:
        if self.since is None:
            return
        logger.info(
            "Database is back after %.1f s (%d failed attempt(s)); running tasks again.",
            time.monotonic() - self.since,
            self.attempts,
        )
        self.since, self.attempts = None, 0


class _LogWriter:
    """A file-like object that sends each written line to a logger (for --log-std)."""

    def __init__(self, log: logging.Logger, level: int) -> None:
        self.log, self.level, self.buffer = log, level, ""

    def write(self, text: str) -> int:
        self.buffer += text
        while "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            if line:
                self.log.log(self.level, line)
        return len(text)

    def flush(self) -> None:
        if self.buffer:
            self.log.log(self.level, self.buffer)
            self.buffer = ""


class Command(BaseCommand):
    help = "Run due background tasks for --duration seconds (0 or less: until stopped)."
    # Django's system checks run in the loop below instead, once the database answers: some (the
    # MariaDB field checks) connect, and a worker started during an outage must wait, not exit.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--duration",
            type=float,
            default=0,
            help="Run for this many seconds (0 or less to run forever). Default 0.",
        )
        parser.add_argument(
            "--sleep",
            type=float,
            default=5.0,
            help="Longest wait, in seconds, when no task was due: an idle worker wakes sooner "
            "on an enqueue or when the next scheduled task falls due. Default 5.",
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=None,
            help="Tasks run at once: sync tasks on this many threads, async def tasks on one "
            "event loop. Default BGTASK_CONCURRENCY (1).",
        )
        parser.add_argument("--queue", default=None, help="Only run tasks of this queue.")
        parser.add_argument("--log-file", default=None, help="Also write bgtask's log here.")
        parser.add_argument(
            "--log-std",
            action="store_true",
            help="Redirect stdout and stderr to the logging system.",
        )
        parser.add_argument(
            "--log-level",
            default=None,
            type=str.upper,
            choices=LOG_LEVELS,
            help="Level for bgtask's loggers (CRITICAL ... DEBUG).",
        )

    def handle(
        self,
        *args: Any,
        duration: float,
        sleep: float,
        queue: str | None,
        log_file: str | None,
        log_std: bool,
        log_level: str | None,
        concurrency: int | None = None,
        **options: Any,
    ) -> None:
        if sleep != sleep or sleep < 0 or sleep == float("inf"):
            raise CommandError(f"--sleep must be a finite number of seconds >= 0, got {sleep}.")
        if duration != duration:
            raise CommandError("--duration must be a number of seconds.")
        if queue is not None:
            # Refused here as a CommandError (exit 1, one line), not as a traceback from run_batch.
            try:
                check_queue(queue)
            except (TypeError, ValueError) as exc:
                raise CommandError(f"--queue: {exc}") from None
        if concurrency is not None and concurrency < 1:
            raise CommandError(f"--concurrency must be 1 or more, got {concurrency}.")
        self.concurrency = conf.concurrency() if concurrency is None else concurrency
        self._configure_logging(log_file, log_level, log_std)

        stop = SignalStop((signal.SIGTERM, signal.SIGINT))
        previous = {}
        # Signal handlers can only be installed from the main thread; called from another thread
        # (call_command in a thread), the command runs without them.
        main = threading.current_thread() is threading.main_thread()
        if main:
            previous = {
                sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGTERM, signal.SIGINT)
            }
            stop.install()  # pool threads see a signal before the handler runs (the module)
        try:
            totals = self._loop(duration, sleep, queue, stop)
            self._settle_before_exit()
        finally:
            if main:
                stop.uninstall()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        logger.info("process_tasks done: %s", totals)

    def _loop(
        self, duration: float, sleep: float, queue: str | None, stop: threading.Event
    ) -> dict[str, int]:
        forever = duration <= 0 or duration == float("inf")
        end = time.monotonic() + (0 if forever else duration)
        totals = {"succeeded": 0, "failed": 0, "retried": 0}
        outage = Outage()
        checked = False
        waiter = IdleWaiter(None if queue is None else [queue])  # wakes on enqueue, or when due
        while not stop.is_set():
            budget = FOREVER_SLICE_SECONDS if forever else end - time.monotonic()
            if budget <= 0:
                break
            try:
                if not checked:
                    self.check()
                    checked = True
                result = run_batch(budget, queue=queue, stop=stop, concurrency=self.concurrency)
            except (OperationalError, InterfaceError) as exc:
                if not is_outage(exc):
                    raise CommandError(
                        f"Database error that waiting will not fix: {first_line(exc)}. Check "
                        "DATABASES and that migrations are applied (manage.py migrate)."
                    ) from None
                pause = outage.lost(unavailable(router.db_for_write(Task), exc))
                if not forever:
                    pause = min(pause, end - time.monotonic())
                if pause > 0:
                    stop.wait(pause)  # a signal sets ``stop``: the wait ends at once
                continue
            except DatabaseError as exc:  # a missing table on PostgreSQL/MariaDB, and the like
                raise CommandError(
                    f"Database error: {first_line(exc)}. Check DATABASES and that migrations are "
                    "applied (manage.py migrate)."
                ) from None
            outage.back()
            for key in totals:
                totals[key] += getattr(result, key)
            if result.ran == 0 and not result.budget_spent:
                pause = sleep if forever else min(sleep, end - time.monotonic())
                if result.held_back_for is not None:
                    # Due tasks wait for a limit (bgtask.limits): look again when it may have
                    # room (a rate's next start), not after the whole --sleep.
                    pause = min(pause, result.held_back_for)
                if pause > 0:
                    waiter.wait(pause, stop)
        return totals

    def _settle_before_exit(self) -> None:
        """Before a clean exit, keep trying for ``BGTASK_EXIT_GRACE`` seconds to write what this
        process owes a database that went away, then say exactly what is left."""
        if not OWED.count():
            return
        grace = conf.exit_grace()
        deadline = time.monotonic() + grace
        wait = OUTAGE_FIRST_WAIT
        while True:
            try:
                Completer(
                    TaskStore(),
                    "exit",
                    group_size=conf.outcome_batch(),
                    max_delay=conf.outcome_max_delay(),
                ).settle_owed()
            except (OperationalError, InterfaceError) as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    logger.warning(
                        "Exiting with %d outcome(s) and claim(s) not written (%s): those tasks "
                        "stay running until their lease ends, then are rescued and run again "
                        "(the attempt is counted).",
                        OWED.count(),
                        first_line(exc),
                    )
                    return
                time.sleep(min(wait, left))
                wait = min(wait * 2, OUTAGE_MAX_WAIT)
                continue
            logger.info("Wrote what this worker owed the database before exiting.")
            return

    def _configure_logging(
        self, log_file: str | None, log_level: str | None, log_std: bool
    ) -> None:
        bgtask_logger = logging.getLogger("bgtask")
        if log_level:
            bgtask_logger.setLevel(log_level)
        if log_file:
            try:
                handler: logging.Handler = logging.FileHandler(log_file)
            except OSError as exc:
                raise CommandError(f"--log-file {log_file!r} cannot be opened: {exc}") from None
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
            )
            bgtask_logger.addHandler(handler)
        if not bgtask_logger.handlers and not logging.getLogger().handlers:
            # Nothing configured by the project: give the command a visible log on stderr.
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
            )
            bgtask_logger.addHandler(handler)
            if not log_level:
                bgtask_logger.setLevel(logging.INFO)
        if log_std:
            sys.stdout = _LogWriter(logging.getLogger("bgtask.stdout"), logging.INFO)
            sys.stderr = _LogWriter(logging.getLogger("bgtask.stderr"), logging.ERROR)
