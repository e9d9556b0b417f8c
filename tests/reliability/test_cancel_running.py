"""Issue 19 items 2 and 3: cancel a running task; current_task() and set_progress() inside one."""

from __future__ import annotations

import signal

import pytest

from bgtask import cancel, current_task, run_batch, set_progress
from bgtask.models import Task
from tests.conftest import start_process_tasks, wait_for
from tests.reliability.helpers import execution_counts
from tests.sampleapp import tasks


def _stop(process) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.mark.parametrize(
    "kind, concurrency",
    [("sync", 1), ("sync", 4), ("async", 4)],
    ids=["sync-1", "sync-4", "async-4"],
)
@pytest.mark.django_db(transaction=True)
def test_cancel_stops_a_running_task_which_ends_cancelled_and_never_retried(
    tmp_path, kind, concurrency
):
    folder, release = tmp_path / "marks", tmp_path / "release"
    folder.mkdir()
    make = tasks.block_and_mark if kind == "sync" else tasks.async_block_and_mark
    victim = make("victim", str(folder), str(release))
    bystander = make("bystander", str(folder), str(release)) if concurrency > 1 else None
    worker = start_process_tasks(
        "--duration", "0", "--sleep", "0.2", "--concurrency", str(concurrency)
    )
    try:
        expected = 2 if bystander else 1
        wait_for(
            lambda: (
                Task.objects.running().count() == expected and len(execution_counts()) == expected
            ),
            timeout=60,
            message="the tasks to start",
        )
        assert cancel(victim) is True  # running: asked to stop
        wait_for(
            lambda: Task.objects.get(pk=victim.pk).status == Task.CANCELLED,
            timeout=60,
            message="the running task to end cancelled",
        )
        victim.refresh_from_db()
        assert "Cancelled while it ran" in victim.last_error
        assert victim.attempts == 1 and victim.cancel_requested_at is not None
        if bystander is not None:  # the other task in flight was not touched
            assert Task.objects.get(pk=bystander.pk).status == Task.RUNNING
        release.touch()
        if bystander is not None:
            wait_for(lambda: Task.objects.get(pk=bystander.pk).status == Task.SUCCEEDED, 60)
    finally:
        release.touch()
        _stop(worker)
    victim.refresh_from_db()
    assert victim.status == Task.CANCELLED  # never retried
    assert execution_counts()["victim"] == 1
    marks = {path.name for path in folder.iterdir()}
    assert not any(name.startswith("finished") and "victim" in name for name in marks)
    if kind == "sync":  # block_and_mark names its marks by pid: the victim never finished
        assert sum(name.startswith("finished") for name in marks) == (1 if bystander else 0)


@pytest.mark.django_db(transaction=True)
def test_cancel_of_a_finished_task_is_false():
    task = tasks.record("done")
    run_batch(10)
    assert cancel(task) is False


@pytest.mark.django_db(transaction=True)
def test_current_task_and_progress_inside_a_running_task(tmp_path):
    folder, release = tmp_path / "marks", tmp_path / "release"
    folder.mkdir()
    assert current_task() is None and set_progress(0.5) is False  # outside a task
    task = tasks.report_progress("p", str(folder), str(release))
    worker = start_process_tasks("--duration", "0", "--sleep", "0.2")
    try:
        wait_for(lambda: (folder / "current-p").exists(), timeout=60, message="the task")
        wait_for(lambda: Task.objects.get(pk=task.pk).progress == 0.5, timeout=60)
        row = Task.objects.get(pk=task.pk)
        assert row.progress_note == "half way"
        assert (folder / "current-p").read_text() == f"{task.pk} 1 sample.report_progress"
        release.touch()
        wait_for(lambda: Task.objects.get(pk=task.pk).status == Task.SUCCEEDED, timeout=60)
    finally:
        release.touch()
        _stop(worker)
