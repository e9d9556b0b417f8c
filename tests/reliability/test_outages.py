"""The database goes away and comes back: process_tasks waits it out with one line each way,
run_batch raises one clear DatabaseUnavailable, and claims it could not release are released by
the next batch. The database is switched off by a TCP proxy in front of the test server (for
SQLite, by removing the directory), never by touching the shared server."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import pytest
from django.db import OperationalError

from bgtask import registry, run_batch
from bgtask.exceptions import DatabaseUnavailable
from bgtask.models import Task
from bgtask.signals import task_started
from bgtask.store import TaskStore
from bgtask.worker.completer import OWED
from tests.conftest import REPO_ROOT, run_python, wait_for, worker_env
from tests.reliability.helpers import enqueue_records, execution_counts
from tests.serverless_faults.conftest import DB_PASSWORD, SwitchableDatabase

pytestmark = pytest.mark.django_db(transaction=True)

# process_tasks' one line per outage; other lines (pruning skipped, for one) may also say that the
# database "is unavailable", and must not be taken for it.
LOST = "Not running tasks; retrying with backoff"
UNAVAILABLE = "is unavailable"
BACK = "Database is back after"


@pytest.fixture
def switchable(tmp_path):
    database = SwitchableDatabase(tmp_path)
    yield database
    database.close()


class Worker:
    """``process_tasks`` in a child process, its stderr collected line by line as it comes."""

    def __init__(self, url: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "django", "process_tasks", "--log-level", "INFO", *args],
            env=worker_env(DATABASE_URL=url, BGTASK_TEST_DB_NAME=""),
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    def wait_for_line(self, text: str, times: int = 1) -> None:
        wait_for(
            lambda: self.count(text) >= times, 60, message=f"{text!r} x{times} in {self.lines}"
        )

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


def test_process_tasks_waits_out_an_outage_with_one_line_each_way(switchable):
    worker = Worker(switchable.url, "--sleep", "0.1")  # started while the database is down
    worker.wait_for_line(LOST)
    enqueue_records(["first"])
    switchable.set_state("up")
    worker.wait_for_line(BACK)
    wait_for(lambda: execution_counts() == {"first": 1}, 60, message="the task to run")
    if switchable.vendor != "sqlite":  # an open SQLite file outlives its directory
        # Lost while running: the open connection is cut and reconnecting is refused.
        switchable.set_state("down")
        worker.wait_for_line(LOST, times=2)
        enqueue_records(["second"])
        switchable.set_state("up")
        worker.wait_for_line(BACK, times=2)
        wait_for(lambda: execution_counts()["second"] == 1, 60, message="the second task")
    assert worker.stop() == 0
    outages_seen = 1 if switchable.vendor == "sqlite" else 2
    assert worker.count(LOST) == worker.count(BACK) == outages_seen, worker.lines
    assert worker.count("Traceback") == 0, worker.lines
    assert not any(DB_PASSWORD in line for line in worker.lines)
    assert execution_counts() == ({"first": 1} | ({} if outages_seen == 1 else {"second": 1}))


def test_sigterm_ends_process_tasks_while_it_waits_for_the_database(switchable):
    worker = Worker(switchable.url, "--sleep", "0.1")
    worker.wait_for_line(LOST)
    # Let the backoff grow past a few attempts' worth, then stop it mid-wait.
    wait_for(lambda: worker.process.poll() is None, message="the worker to be running")
    assert worker.stop() == 0
    assert worker.count(LOST) == 1 and worker.count("Traceback") == 0, worker.lines


def test_duration_ends_process_tasks_even_if_the_database_never_returns(switchable):
    worker = Worker(switchable.url, "--duration", "3")
    assert worker.process.wait(timeout=60) == 0
    wait_for(lambda: worker.count("process_tasks done") == 1, message="the final line")
    assert worker.count(LOST) == 1 and worker.count(BACK) == 0, worker.lines


def test_an_error_waiting_cannot_fix_ends_process_tasks_with_one_line(tmp_path):
    # A database without bgtask's tables (migrations not applied).
    worker = Worker(f"sqlite:///{tmp_path / 'empty.sqlite3'}", "--duration", "30")
    assert worker.process.wait(timeout=60) == 1
    wait_for(lambda: worker.count("CommandError") == 1, message="the error line")
    assert worker.count("no such table") == 1 and worker.count("Traceback") == 0, worker.lines


def test_run_batch_raises_one_clear_database_unavailable(switchable):
    code = (
        "import django; django.setup()\n"
        "from django.db import OperationalError\n"
        "from bgtask import run_batch\n"
        "from bgtask.exceptions import DatabaseUnavailable\n"
        "try:\n"
        "    run_batch(5)\n"
        "except DatabaseUnavailable as exc:\n"
        "    assert isinstance(exc, OperationalError)\n"
        "    assert exc.__cause__ is None and exc.__suppress_context__\n"
        "    print('RAISED', exc)\n"
    )
    done = run_python(code, DATABASE_URL=switchable.url, BGTASK_TEST_DB_NAME="")
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert line.startswith("RAISED Database 'default' (") and UNAVAILABLE in line, line
    assert "\n" not in line and DB_PASSWORD not in line
    assert done.stderr == ""  # nothing logged on the way: the exception is the one line


def test_claims_a_batch_could_not_release_are_released_by_the_next_batch(monkeypatch):
    enqueue_records([f"k{i}" for i in range(8)])
    stop = threading.Event()
    started: list[int] = []

    def stop_on_second(sender, task, **kwargs):
        started.append(task.id)
        if len(started) == 2:  # the second claim holds two tasks: one is left unstarted
            stop.set()

    real_release = TaskStore.release

    def release_fails(self, task_ids, worker_id):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(TaskStore, "release", release_fails)
    task_started.connect(stop_on_second)
    try:
        with pytest.raises(DatabaseUnavailable, match="is unavailable"):
            run_batch(30, stop=stop)
    finally:
        task_started.disconnect(stop_on_second)
    stranded = Task.objects.running()
    assert stranded.count() >= 1
    pending = OWED.pending_hand_back("default")
    assert sorted(i for ids in pending.values() for i in ids) == sorted(
        stranded.values_list("id", flat=True)
    )

    monkeypatch.setattr(TaskStore, "release", real_release)
    result = run_batch(30)
    assert result.released == len(pending[next(iter(pending))]) and result.rescued == 0
    assert OWED.pending_hand_back("default") == {}
    assert not Task.objects.running().exists()
    assert execution_counts() == {f"k{i}": 1 for i in range(8)}


def test_a_task_whose_outcome_cannot_be_written_is_released_by_the_next_batch(monkeypatch):
    """The database goes away while a task runs (its own query fails, and so does the write of
    the retry): the row is handed back by the process's next batch, not left to its lease."""
    task = registry.get("rel.always_raise")()
    real_mark_retry = TaskStore.mark_retry

    def mark_retry_fails(self, *args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(TaskStore, "mark_retry", mark_retry_fails)
    with pytest.raises(DatabaseUnavailable, match="is unavailable"):
        run_batch(30)
    task.refresh_from_db()
    assert (task.status, task.attempts) == (Task.RUNNING, 0)
    assert OWED.pending_hand_back("default") == {task.locked_by: [task.id]}

    monkeypatch.setattr(TaskStore, "mark_retry", real_mark_retry)
    result = run_batch(30)
    assert (result.released, result.retried, result.rescued) == (1, 1, 0)
    assert OWED.pending_hand_back("default") == {}
    task.refresh_from_db()
    # Run again at once; the attempt whose outcome was lost is not counted.
    assert (task.status, task.attempts) == (Task.QUEUED, 1)


def test_a_group_write_lost_before_a_task_starts_leaves_that_task_unstarted(monkeypatch, settings):
    """The waiting group is written before the next claimed task (BGTASK_OUTCOME_MAX_DELAY = 0:
    always). If the database is gone by then, that task has not started: it is released with the
    rest of the claim, not left running under the worker's lease."""
    settings.BGTASK_OUTCOME_MAX_DELAY = 0
    monkeypatch.setattr("bgtask.worker.batch.FAST_BATCH_SECONDS", 3600.0)  # claims 1, then 2 tasks
    enqueue_records(["g1", "g2", "g3"])
    real_write = TaskStore.mark_succeeded_many
    writes: list[int] = []

    def second_write_fails(self, rows):
        writes.append(len(rows))
        if len(writes) >= 2:
            raise OperationalError("server closed the connection unexpectedly")
        return real_write(self, rows)

    monkeypatch.setattr(TaskStore, "mark_succeeded_many", second_write_fails)
    with pytest.raises(DatabaseUnavailable):
        run_batch(30)
    # The second write was the one before g3 started: g2's success is owed, g3 was released.
    assert writes == [1, 1]
    assert execution_counts() == {"g1": 1, "g2": 1}
    assert not Task.objects.running().exclude(arguments__contains="g2").exists()

    monkeypatch.setattr(TaskStore, "mark_succeeded_many", real_write)
    run_batch(30)
    assert not Task.objects.running().exists()
    assert set(Task.objects.values_list("status", flat=True)) == {Task.SUCCEEDED}
    assert execution_counts() == {"g1": 1, "g2": 1, "g3": 1}
