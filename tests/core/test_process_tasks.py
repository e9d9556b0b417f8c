"""manage.py process_tasks as a real process: options, exit codes, SIGTERM, logging."""

import signal
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from bgtask.models import Task
from tests.conftest import REPO_ROOT, run_python, start_process_tasks, wait_for, worker_env
from tests.sampleapp import tasks
from tests.sampleapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)


def test_runs_due_tasks_and_exits_zero_after_duration():
    for i in range(10):
        tasks.record(f"k{i}")
    worker = start_process_tasks("--duration", "2", "--sleep", "0.2", "--log-level", "INFO")
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert Task.objects.succeeded().count() == 10
    assert "process_tasks done" in err


def test_picks_up_tasks_enqueued_while_it_sleeps():
    worker = start_process_tasks("--duration", "20", "--sleep", "0.1")
    wait_for(lambda: worker.poll() is None, message="the worker to start")
    tasks.record("late")
    wait_for(
        lambda: Execution.objects.filter(key="late").exists(),
        timeout=15,
        message="the late task to run",
    )
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0


def test_sigterm_finishes_the_running_task_releases_the_rest_and_exits_zero(tmp_path):
    started, release = tmp_path / "started", tmp_path / "release"
    # Fast tasks first so the claim size grows; the blocking task is then claimed together with
    # two lower-priority tasks that it keeps from starting.
    for _ in range(3):
        tasks.noop(priority=10)
    blocker = tasks.block_until_file("blocker", str(started), str(release), priority=5)
    tasks.record("waiting-1", priority=1)
    tasks.record("waiting-2", priority=1)
    worker = start_process_tasks("--duration", "60", "--sleep", "0.1", "--log-level", "INFO")
    wait_for(started.exists, timeout=30, message="the blocking task to start")
    worker.send_signal(signal.SIGTERM)
    release.write_text("go")
    _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    blocker.refresh_from_db()
    assert blocker.status == Task.SUCCEEDED and blocker.return_value == "released"
    waiting = Task.objects.filter(task_name="sample.record")
    assert [t.status for t in waiting] == [Task.QUEUED, Task.QUEUED]
    assert all(t.locked_by is None and t.locked_until is None for t in waiting)
    assert not Execution.objects.filter(key__startswith="waiting").exists()
    assert "'released': 2" in err, err


def test_sigint_is_handled_like_sigterm(tmp_path):
    started, release = tmp_path / "started", tmp_path / "release"
    blocker = tasks.block_until_file("blocker", str(started), str(release))
    worker = start_process_tasks("--duration", "60", "--sleep", "0.1")
    wait_for(started.exists, timeout=30, message="the blocking task to start")
    worker.send_signal(signal.SIGINT)
    release.write_text("go")
    assert worker.wait(timeout=30) == 0
    blocker.refresh_from_db()
    assert blocker.status == Task.SUCCEEDED


def test_queue_option_runs_only_that_queue():
    tasks.record("mail", queue="mail")
    tasks.record("other", queue="other")
    worker = start_process_tasks("--duration", "1", "--sleep", "0.1", "--queue", "mail")
    assert worker.wait(timeout=30) == 0
    assert list(Execution.objects.values_list("key", flat=True)) == ["mail"]


def test_log_file_and_log_level(tmp_path):
    log_file = tmp_path / "bgtask.log"
    tasks.always_fail("logged failure")
    worker = start_process_tasks(
        "--duration", "1", "--sleep", "0.1", "--log-file", str(log_file), "--log-level", "DEBUG"
    )
    assert worker.wait(timeout=30) == 0
    text = log_file.read_text()
    assert "logged failure" in text and "WARNING" in text and "DEBUG" in text


def test_log_std_sends_task_prints_to_the_log(tmp_path):
    log_file = tmp_path / "bgtask.log"
    code = (
        "import django; django.setup();"
        "from django.core.management import call_command;"
        "call_command('process_tasks', duration=0.5, sleep=0.1, log_std=True,"
        f" log_file={str(log_file)!r}, log_level='INFO');"
        "print('printed by a task')"
    )
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert "printed by a task" in log_file.read_text()
    assert "printed by a task" not in done.stdout


def test_bad_options_are_refused():
    with pytest.raises(CommandError, match="sleep"):
        call_command("process_tasks", duration=1, sleep=-1)
    with pytest.raises(CommandError):
        call_command("process_tasks", "--log-level", "LOUD")
    done = subprocess.run(
        [sys.executable, "-m", "django", "process_tasks", "--duration", "soon"],
        env=worker_env(),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "--duration" in done.stderr


def test_seed_defaults():
    from bgtask.management.commands.process_tasks import Command

    parser = Command().create_parser("manage.py", "process_tasks")
    options = parser.parse_args([])
    assert options.duration == 0 and options.sleep == 5
    assert options.log_file is None and options.log_std is False and options.queue is None


def test_runs_from_a_thread_without_signal_handlers():
    import threading

    from django.core.management import call_command as run

    tasks.record("threaded")
    errors = []

    def target():
        try:
            run("process_tasks", duration=0.5, sleep=0.1)
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=30)
    assert not errors
    assert Execution.objects.filter(key="threaded").exists()
