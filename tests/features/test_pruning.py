"""History and pruning: BGTASK_RETENTION, chunks, run_batch, and the prune_tasks command."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from bgtask import conf, run_batch
from bgtask.models import Task
from bgtask.pruning import prune

pytestmark = pytest.mark.django_db(transaction=True)


def make_history(old: int = 5, recent: int = 2) -> None:
    now = timezone.now()
    rows = []
    for i in range(old):
        status = Task.SUCCEEDED if i % 2 else Task.FAILED
        rows.append(Task(task_name="old", status=status, finished_at=now - timedelta(days=8)))
    for _ in range(recent):
        rows.append(Task(task_name="recent", status=Task.SUCCEEDED, finished_at=now))
    # Never pruned, however old: still to run, or running.
    rows.append(Task(task_name="queued", status=Task.QUEUED, run_at=now - timedelta(days=30)))
    rows.append(Task(task_name="running", status=Task.RUNNING, finished_at=None))
    Task.objects.bulk_create(rows)


def remaining() -> list[str]:
    return sorted(set(Task.objects.values_list("task_name", flat=True)))


def test_prune_deletes_only_finished_tasks_older_than_the_retention():
    make_history()
    assert prune() == 5
    assert remaining() == ["queued", "recent", "running"]


def test_prune_goes_in_chunks():
    make_history(old=5)
    assert prune(chunk_size=2, max_chunks=1) == 2
    assert prune(chunk_size=2) == 3


@override_settings(BGTASK_PRUNE_CHUNK_SIZE=3)
def test_run_batch_prunes_one_chunk_per_call():
    make_history(old=5)
    run_batch(1)
    assert Task.objects.filter(task_name="old").count() == 2
    run_batch(1)
    assert Task.objects.filter(task_name="old").count() == 0


@override_settings(BGTASK_RETENTION=None)
def test_retention_none_keeps_everything():
    make_history()
    assert prune() == 0
    assert Task.objects.filter(task_name="old").count() == 5


def test_retention_setting_is_read_and_checked():
    assert conf.retention() == timedelta(days=7)
    with override_settings(BGTASK_RETENTION=timedelta(days=1)):
        assert conf.retention() == timedelta(days=1)
    with override_settings(BGTASK_RETENTION=60):
        assert conf.retention() == timedelta(seconds=60)
    for bad in ("7d", -1, float("nan"), True):
        with override_settings(BGTASK_RETENTION=bad), pytest.raises(ImproperlyConfigured):
            conf.retention()


def test_bad_pruning_settings_fail_the_system_checks():
    from bgtask.checks import check_settings

    with override_settings(BGTASK_RETENTION="a week", BGTASK_PRUNE_CHUNK_SIZE=0):
        messages = [error.msg for error in check_settings()]
    assert any("BGTASK_RETENTION" in m for m in messages)
    assert any("BGTASK_PRUNE_CHUNK_SIZE" in m for m in messages)


def test_the_command_dry_run_counts_and_the_real_run_deletes():
    make_history()
    out = StringIO()
    call_command("prune_tasks", "--dry-run", stdout=out)
    assert "Would delete 5 finished task(s)" in out.getvalue()
    assert Task.objects.filter(task_name="old").count() == 5
    out = StringIO()
    call_command("prune_tasks", "--chunk-size", "2", stdout=out)
    assert "Deleted 5 finished task(s)" in out.getvalue()
    out = StringIO()
    call_command("prune_tasks", "--older-than", "0", stdout=out)
    assert "Deleted 2 finished task(s)" in out.getvalue()
    assert remaining() == ["queued", "running"]
