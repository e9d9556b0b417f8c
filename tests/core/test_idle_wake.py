"""An idle ``process_tasks`` starts an enqueued task at once (issue 18), as a real process.

Every worker here runs with ``--sleep 600``: without a wake-up nothing would run before the tests'
ceilings, so a task that runs proves the wake-up (LISTEN/NOTIFY on PostgreSQL, the primary-key
probe elsewhere, or the next-due time) and never the old fixed nap. The tests wait for events
(a row written by the task, the LISTEN connection in ``pg_stat_activity``), never for times.
"""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection, transaction

from bgtask.models import Task
from bgtask.worker.idle import APPLICATION_NAME
from tests.conftest import start_process_tasks, wait_for
from tests.sampleapp import tasks
from tests.sampleapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)

NAP = "600"  # far beyond every ceiling below: only a wake-up can run a task in time
CEILING = 60.0

on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's"
)


def listening_pids() -> list[int]:
    """Backends of this test database that LISTEN, their notifications known to arrive."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = %s",
            [APPLICATION_NAME],
        )
        return [row[0] for row in cursor.fetchall()]


def ran(key: str) -> bool:
    return Execution.objects.filter(key=key).exists()


BATCH_LINE = re.compile(r" Batch \S+: \{'succeeded': (\d+), 'failed': (\d+), 'retried': (\d+)")


class Worker:
    """``process_tasks --sleep 600`` on one queue, logging at DEBUG to a file the test reads."""

    def __init__(self, queue: str | None, log_path: Path) -> None:
        args = ("--queue", queue) if queue else ()
        self.queue, self.log_path = queue, log_path
        self.process = start_process_tasks(
            "--sleep", NAP, "--log-level", "DEBUG", "--log-file", str(log_path), *args
        )

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def idle(self, succeeded: int) -> None:
        """Return once the worker has run ``succeeded`` tasks in all and its last batch found
        nothing: it is waiting (it waits after every empty batch, and only then). On PostgreSQL,
        also once its LISTEN connection works."""
        if connection.vendor == "postgresql":
            wait_for(listening_pids, timeout=CEILING, message="the worker to LISTEN")

        def waiting() -> bool:
            batches = [tuple(map(int, m.groups())) for m in BATCH_LINE.finditer(self.log())]
            done = sum(b[0] for b in batches)
            return done >= succeeded and bool(batches) and batches[-1] == (0, 0, 0)

        wait_for(waiting, timeout=CEILING, message=f"the worker to be idle after {succeeded}")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            _, err = self.process.communicate(timeout=CEILING)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        assert self.process.returncode == 0, err[-3000:]
        return self.log()


@pytest.fixture
def worker_factory(tmp_path) -> Iterator:
    started: list[Worker] = []

    def start(queue: str | None = None) -> Worker:
        worker = Worker(queue, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.communicate()


def test_an_enqueue_wakes_the_idle_worker(worker_factory):
    worker = worker_factory()
    for i in range(3):
        worker.idle(succeeded=i)
        tasks.record(f"woken-{i}")
        wait_for(lambda i=i: ran(f"woken-{i}"), timeout=CEILING, message=f"woken-{i} to run")
    worker.stop()


def test_a_rolled_back_enqueue_wakes_nobody_and_runs_nothing(worker_factory):
    worker = worker_factory("wake")
    worker.idle(succeeded=0)

    class Abandon(Exception):
        pass

    with pytest.raises(Abandon), transaction.atomic():
        tasks.record("rolled-back", queue="wake")
        raise Abandon
    tasks.record("committed", queue="wake")
    wait_for(lambda: ran("committed"), timeout=CEILING, message="the committed task to run")
    log = worker.stop()
    assert not ran("rolled-back")
    assert not Task.objects.filter(arguments__contains="rolled-back").exists()
    if connection.vendor == "postgresql":
        # One notification, the committed enqueue's: the rolled-back one was never delivered.
        assert log.count("Notified of queue 'wake': waking.") == 1, log[-3000:]


def test_a_notification_for_another_queue_claims_nothing_outside_its_queue(worker_factory):
    worker = worker_factory("mine")
    worker.idle(succeeded=0)
    other = tasks.record("other-queue", queue="other")
    if connection.vendor == "postgresql":
        wait_for(
            lambda: "Notified of queue 'other', not one of ours." in worker.log(),
            timeout=CEILING,
            message="the other queue's notification to arrive",
        )
    worker.idle(succeeded=0)
    tasks.record("my-queue", queue="mine")
    wait_for(lambda: ran("my-queue"), timeout=CEILING, message="the task of its queue to run")
    log = worker.stop()
    other.refresh_from_db()
    assert other.status == Task.QUEUED and other.locked_by is None
    assert not ran("other-queue")
    if connection.vendor == "postgresql":
        assert "Notified of queue 'other', not one of ours." in log, log[-3000:]


@on_postgres
def test_a_dropped_listen_connection_falls_back_to_polling_and_reconnects(worker_factory):
    worker = worker_factory("drop")
    worker.idle(succeeded=0)
    (first,) = listening_pids()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [first])
    # While it reconnects, the poll finds the task (the new LISTEN connection wakes it anyway).
    tasks.record("while-dropped", queue="drop")
    wait_for(lambda: ran("while-dropped"), timeout=CEILING, message="a task while dropped")
    second = wait_for(
        lambda: [pid for pid in listening_pids() if pid != first],
        timeout=CEILING,
        message="a new LISTEN connection",
    )
    assert first not in second
    tasks.record("after-reconnect", queue="drop")
    wait_for(lambda: ran("after-reconnect"), timeout=CEILING, message="a task after reconnect")
    log = worker.stop()
    assert "The LISTEN connection was lost" in log, log[-3000:]
    assert "Listening for enqueues (connection 2)." in log, log[-3000:]
    assert "Notified of queue 'drop': waking." in log.split("(connection 2)")[-1], log[-3000:]


def test_a_scheduled_task_starts_after_its_run_at_never_before(worker_factory):
    worker = worker_factory("later")
    worker.idle(succeeded=0)
    scheduled = [tasks.record(f"at-{i}", queue="later", schedule=1 + i) for i in range(3)]
    for i in range(3):
        wait_for(lambda i=i: ran(f"at-{i}"), timeout=CEILING, message=f"at-{i} to run")
    worker.stop()
    for i, task in enumerate(scheduled):
        task.refresh_from_db()
        first_line = Execution.objects.get(key=f"at-{i}").created_at
        assert task.status == Task.SUCCEEDED
        assert first_line >= task.run_at, (first_line, task.run_at)
        assert task.started_at >= task.run_at


@on_postgres
def test_a_task_scheduled_ahead_is_slept_until_not_claimed_at_once(worker_factory):
    worker = worker_factory("ahead")
    worker.idle(succeeded=0)

    def settled() -> bool:
        # The wake-up that follows each (re)connection has been claimed for: nothing else wakes it.
        log = worker.log()
        listening = log.find("Listening for enqueues (connection 1).")
        return listening >= 0 and BATCH_LINE.search(log, listening) is not None

    wait_for(settled, timeout=CEILING, message="the claim after the LISTEN connection opened")
    before = len(BATCH_LINE.findall(worker.log()))
    task = tasks.record("ahead", queue="ahead", schedule=2)
    wait_for(lambda: ran("ahead"), timeout=CEILING, message="the scheduled task to run")
    log = worker.stop()
    assert "Notified of queue 'ahead', due at" in log, log[-3000:]
    # The first claim after the insert is the one that ran it: the notification made the worker
    # sleep until run_at, not claim at once and find nothing.
    assert BATCH_LINE.findall(log)[before] == ("1", "0", "0"), log[-3000:]
    task.refresh_from_db()
    assert task.started_at >= task.run_at
    assert Execution.objects.get(key="ahead").created_at >= task.run_at


@on_postgres
def test_through_pgbouncer_in_transaction_mode_it_finds_listen_silent_and_polls(tmp_path):
    from tests.faults.servers import PgBouncer, ServerUnavailable

    settings = connection.settings_dict
    try:
        bouncer = PgBouncer(int(settings["PORT"] or 5432), upstream_host=settings["HOST"])
    except ServerUnavailable as exc:
        pytest.skip(str(exc))
    bouncer.start()
    log_path = tmp_path / "worker.log"
    process = start_process_tasks(
        "--sleep",
        NAP,
        "--log-level",
        "DEBUG",
        "--log-file",
        str(log_path),
        "--queue",
        "pooled",
        DATABASE_URL=f"{bouncer.url}/postgres",
    )
    try:
        wait_for(
            lambda: log_path.exists() and "did not reach this worker" in log_path.read_text(),
            timeout=CEILING,
            message="the worker to find that LISTEN does not work through PgBouncer",
        )
        tasks.record("through-pgbouncer", queue="pooled")
        wait_for(lambda: ran("through-pgbouncer"), timeout=CEILING, message="a polled task")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=CEILING) == 0
        assert "New task(s) inserted: waking." in log_path.read_text()
        assert not listening_pids()
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
        bouncer.destroy()
