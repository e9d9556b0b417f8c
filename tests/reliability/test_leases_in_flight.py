"""Issue 20 B1-B3: the promises about leases that a chaos soak found broken.

Real worker processes with a short lease; every wait is for an event with a generous ceiling.
"""

from __future__ import annotations

import logging
import signal

import pytest
from django.db import OperationalError

from bgtask import run_batch
from bgtask.exceptions import DatabaseUnavailable
from bgtask.management.commands.process_tasks import Command
from bgtask.models import Task
from bgtask.store import TaskStore
from bgtask.worker.completer import OWED
from tests.conftest import start_process_tasks, wait_for
from tests.reliability.helpers import enqueue_records, execution_counts
from tests.sampleapp import tasks
from tests.sampleapp.models import Execution

LEASE = "2"


def _kill(process) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=30)


@pytest.mark.django_db(transaction=True)
def test_a_dead_workers_tasks_are_rescued_while_the_other_workers_are_in_a_long_batch(tmp_path):
    """B2: rescue used to run only when a batch started; a busy worker's batch lasts minutes."""
    busy_folder, dead_folder = tmp_path / "busy", tmp_path / "dead"
    busy_folder.mkdir()
    dead_folder.mkdir()
    release = tmp_path / "release"
    tasks.block_and_mark("busy", str(busy_folder), str(release), priority=9)
    busy = start_process_tasks("--duration", "0", "--sleep", "0.2", BGTASK_TEST_LEASE_SECONDS=LEASE)
    try:
        wait_for(lambda: any(busy_folder.iterdir()), timeout=60, message="the busy worker's task")
        victims = [
            tasks.block_and_mark(f"victim{i}", str(dead_folder), str(release)) for i in range(2)
        ]
        doomed = start_process_tasks(
            "--duration", "0", "--concurrency", "2", BGTASK_TEST_LEASE_SECONDS=LEASE
        )
        wait_for(
            lambda: Execution.objects.filter(key__startswith="victim").count() == 2,
            timeout=60,
            message="the victims",
        )
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)
        # The busy worker is still inside its first batch (its task has not been released), yet
        # the dead worker's tasks are requeued: its heartbeat rescued them.
        wait_for(
            lambda: (
                Task.objects.filter(
                    pk__in=[v.pk for v in victims],
                    status=Task.QUEUED,
                    last_error__startswith="Abandoned",
                ).count()
                == 2
            ),
            timeout=60,
            message="the dead worker's tasks to be rescued during the busy worker's batch",
        )
        assert Task.objects.get(arguments__contains='"busy"').status == Task.RUNNING
        assert not release.exists()
    finally:
        release.touch()
        busy.send_signal(signal.SIGTERM)
        try:
            busy.communicate(timeout=60)
        finally:
            _kill(busy)


@pytest.mark.django_db(transaction=True)
def test_a_worker_frozen_past_its_lease_stops_its_run_when_it_thaws(tmp_path):
    """B3: the frozen worker's run is stopped (TaskAbandoned) instead of finishing alongside the
    run another worker started after rescuing the task."""
    folder, release = tmp_path / "marks", tmp_path / "release"
    folder.mkdir()
    task = tasks.block_and_mark("frozen", str(folder), str(release))
    log_a = tmp_path / "a.log"
    first = start_process_tasks(
        "--duration", "0", "--log-file", str(log_a), BGTASK_TEST_LEASE_SECONDS=LEASE
    )
    second = None
    try:
        wait_for(lambda: (folder / f"started-{first.pid}").exists(), message="the first run")
        first.send_signal(signal.SIGSTOP)
        second = start_process_tasks(
            "--duration", "0", "--sleep", "0.2", BGTASK_TEST_LEASE_SECONDS=LEASE
        )
        wait_for(
            lambda: (folder / f"started-{second.pid}").exists(),
            timeout=90,
            message="the second worker to rescue and start the task",
        )
        first.send_signal(signal.SIGCONT)
        wait_for(
            lambda: log_a.exists() and "lease was lost" in log_a.read_text(),
            timeout=60,
            message="the thawed worker to stop its run",
        )
        release.touch()
        wait_for(
            lambda: (folder / f"finished-{second.pid}").exists(),
            timeout=60,
            message="the second run to finish",
        )
        wait_for(lambda: Task.objects.get(pk=task.pk).status == Task.SUCCEEDED, timeout=60)
        assert not (folder / f"finished-{first.pid}").exists()
        assert execution_counts() == {"frozen": 2}
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.send_signal(signal.SIGTERM)
                try:
                    process.communicate(timeout=60)
                finally:
                    _kill(process)


@pytest.mark.django_db(transaction=True)
def test_a_clean_exit_during_an_outage_writes_what_it_owes_once_the_database_answers(
    monkeypatch, caplog
):
    """B1: process_tasks used to exit with its outcomes unwritten and its claims running."""
    enqueue_records(["o1", "o2", "o3"])
    real_many = TaskStore.mark_succeeded_many
    failures = {"left": 1_000_000}

    def mark_many(self, rows):
        if failures["left"] > 0:
            failures["left"] -= 1
            raise OperationalError("server closed the connection unexpectedly")
        return real_many(self, rows)

    monkeypatch.setattr(TaskStore, "mark_succeeded_many", mark_many)
    command = Command()
    command.concurrency = 1
    with pytest.raises(DatabaseUnavailable):
        run_batch(30, concurrency=3)
    # The three ran; their successes could not be written.
    assert OWED.count("default") == 3
    assert execution_counts() == {"o1": 1, "o2": 1, "o3": 1}
    # The database is still away when the worker is told to stop: it gives up after the grace.
    monkeypatch.setattr("bgtask.conf.exit_grace", lambda: 0.3)
    with caplog.at_level(logging.WARNING):
        command._settle_before_exit()
    assert "Exiting with 3 outcome(s)" in caplog.text
    assert OWED.count("default") == 3
    # Back before the grace is over: what it owed is written, nothing runs twice.
    failures["left"] = 2
    monkeypatch.setattr("bgtask.conf.exit_grace", lambda: 30.0)
    command._settle_before_exit()
    assert OWED.count("default") == 0
    assert Task.objects.succeeded().count() == 3
    assert execution_counts() == {"o1": 1, "o2": 1, "o3": 1}
