"""manage.py import_background_tasks against django-background-tasks' own table: the rows are
written by django-background-tasks itself (installed in the test run, its migrations applied)."""

from datetime import timedelta
from io import StringIO

import pytest
from background_task import background as legacy_background
from background_task.models import Task as LegacyTask
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from bgtask import run_batch
from bgtask.enqueue.legacy_import import SOURCE
from bgtask.models import ImportedTask, Task
from tests.sampleapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)


def legacy(name, args=(), kwargs=None, **fields):
    """A pending row as django-background-tasks' own enqueue writes it."""
    task = LegacyTask.objects.new_task(
        name, list(args), kwargs or {}, run_at=fields.pop("run_at", timezone.now()), **fields
    )
    task.save()
    return task


def run(*args):
    out, err = StringIO(), StringIO()
    call_command("import_background_tasks", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_pending_rows_become_queued_tasks_with_their_fields():
    later = timezone.now() + timedelta(hours=2)
    until = later + timedelta(days=30)
    a = legacy("sample.record", ["a"])
    b = legacy(
        "compat.notify",
        [5],
        priority=7,
        queue="mail",
        verbose_name="Notify user 5",
        run_at=later,
        repeat=LegacyTask.DAILY,
        repeat_until=until,
    )
    c = legacy("sample.add", [], {"a": 1, "b": 2})
    LegacyTask.objects.filter(pk=c.pk).update(attempts=3, last_error="Traceback: earlier")
    out, _ = run()
    assert "3 pending task(s)" in out and "Imported 3 task(s)." in out
    rows = {m.source_id: Task.objects.get(pk=m.task_id) for m in ImportedTask.objects.all()}
    assert set(rows) == {a.pk, b.pk, c.pk}
    assert (rows[a.pk].task_name, rows[a.pk].args, rows[a.pk].kwargs) == (
        "sample.record",
        ["a"],
        {},
    )
    assert rows[a.pk].queue == "default" and rows[a.pk].status == Task.QUEUED
    notify = rows[b.pk]
    assert (notify.priority, notify.queue, notify.verbose_name) == (7, "mail", "Notify user 5")
    assert (notify.run_at, notify.repeat, notify.repeat_until) == (later, Task.DAILY, until)
    added = rows[c.pk]
    assert (added.kwargs, added.attempts, added.last_error) == (
        {"a": 1, "b": 2},
        3,
        "Traceback: earlier",
    )
    assert LegacyTask.objects.count() == 3  # the source is left as it was
    outcome = run_batch(10)
    assert outcome.succeeded == 2  # record and add are due; notify is two hours away
    assert Execution.objects.get().key == "a"
    assert Task.objects.get(pk=added.pk).return_value == 3


def test_rows_written_by_the_legacy_decorator_call_import_too():
    @legacy_background(name="compat.notify", schedule=0)
    def notify(user_id): ...

    notify(11, verbose_name="Notify eleven", priority=2)
    run()
    task = Task.objects.get()
    assert (task.task_name, task.args, task.verbose_name, task.priority) == (
        "compat.notify",
        [11],
        "Notify eleven",
        2,
    )


def test_a_second_run_imports_nothing_again_even_after_the_tasks_ran_and_were_pruned():
    legacy("sample.record", ["once"])
    run()
    run_batch(10)
    Task.objects.all().delete()  # pruned
    out, _ = run()
    assert "already imported by an earlier run (skipped): 1" in out
    assert "Imported 0 task(s)." in out
    assert Task.objects.count() == 0
    legacy("sample.record", ["new"])
    out, _ = run()
    assert "Imported 1 task(s)." in out
    assert Task.objects.get().args == ["new"]
    assert ImportedTask.objects.filter(source=SOURCE).count() == 2


def test_dry_run_writes_nothing():
    legacy("sample.record", ["a"])
    legacy("sample.record", ["b"])
    out, _ = run("--dry-run")
    assert "Dry run: 2 task(s) would be imported; nothing was written." in out
    assert Task.objects.count() == 0 and ImportedTask.objects.count() == 0


def test_unknown_task_names_are_listed_and_refused_unless_kept():
    legacy("sample.record", ["ok"])
    legacy("old.tasks.gone", [1])
    legacy("old.tasks.gone", [2])
    legacy("old.tasks.other", [])
    with pytest.raises(CommandError) as refused:
        run()
    message = str(refused.value)
    assert "3 row(s) name tasks that are not registered" in message
    assert "old.tasks.gone: 2" in message and "old.tasks.other: 1" in message
    assert "Nothing was imported" in message
    assert Task.objects.count() == 0 and ImportedTask.objects.count() == 0
    with pytest.raises(CommandError):
        run("--dry-run")
    out, err = run("--keep-unknown")
    assert "Imported 4 task(s)." in out and "old.tasks.gone: 2" in err
    assert Task.objects.filter(task_name="old.tasks.gone").count() == 2


def test_failed_and_live_locked_rows_are_skipped_expired_locks_are_not():
    now = timezone.now()
    failed = legacy("sample.record", ["failed"])
    live = legacy("sample.record", ["live"])
    expired = legacy("sample.record", ["expired"])
    LegacyTask.objects.filter(pk=failed.pk).update(failed_at=now)
    LegacyTask.objects.filter(pk=live.pk).update(locked_by="4242", locked_at=now)
    LegacyTask.objects.filter(pk=expired.pk).update(
        locked_by="4243", locked_at=now - timedelta(hours=2)
    )
    out, err = run()
    assert "failed (failed_at set; not pending, skipped): 1" in out
    assert f"(#{live.pk})" in err and "Stop its workers" in err
    assert [t.args for t in Task.objects.all()] == [["expired"]]
    # Once its worker is gone (the lock expires, or the worker finished and deleted it), a
    # later run takes the rest.
    LegacyTask.objects.filter(pk=live.pk).update(locked_by=None, locked_at=None)
    run()
    assert sorted(t.args[0] for t in Task.objects.all()) == ["expired", "live"]


def test_the_creator_is_not_kept_and_is_counted():
    user = User.objects.create_user("creator")
    legacy("sample.record", ["by-user"], creator=user)
    out, _ = run()
    assert "with a creator: 1" in out
    assert Task.objects.get().args == ["by-user"]


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ("not json", "task_params is not"),
        ('{"args": []}', "task_params is not"),
        ('[{"a": 1}, []]', "task_params is not"),
        ("[[NaN], {}]", "NaN"),
    ],
)
def test_unreadable_rows_refuse_the_whole_import(params, error):
    legacy("sample.record", ["fine"])
    bad = legacy("sample.record", ["bad"])
    LegacyTask.objects.filter(pk=bad.pk).update(task_params=params)
    with pytest.raises(CommandError, match=f"#{bad.pk}: .*{error}"):
        run()
    assert Task.objects.count() == 0 and ImportedTask.objects.count() == 0


def test_a_queue_name_too_long_for_bgtask_is_refused():
    legacy("sample.record", ["q"], queue="q" * 150)
    with pytest.raises(CommandError, match="queue names are at most 100"):
        run()
    assert Task.objects.count() == 0


@override_settings(BACKGROUND_TASK_PRIORITY_ORDERING="ASC")
def test_ascending_priorities_are_turned_round():
    first = legacy("sample.record", ["first"], priority=1)
    last = legacy("sample.record", ["last"], priority=9)
    run()
    by_source = {m.source_id: Task.objects.get(pk=m.task_id) for m in ImportedTask.objects.all()}
    assert by_source[first.pk].priority == -1 and by_source[last.pk].priority == -9
    run_batch(10)
    assert list(Execution.objects.order_by("id").values_list("key", flat=True)) == [
        "first",
        "last",
    ]


def test_one_transaction_a_failure_while_writing_leaves_nothing(monkeypatch):
    legacy("sample.record", ["a"])
    legacy("sample.record", ["b"])

    from django.db.models.query import QuerySet

    original = QuerySet.bulk_create

    def broken(queryset, objs, *args, **kwargs):
        # The tasks are written first; the markers after them fail.
        if queryset.model is ImportedTask:
            raise RuntimeError("disk full")
        return original(queryset, objs, *args, **kwargs)

    monkeypatch.setattr(QuerySet, "bulk_create", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        run()
    monkeypatch.undo()
    assert Task.objects.count() == 0 and ImportedTask.objects.count() == 0
    out, _ = run()
    assert "Imported 2 task(s)." in out


def test_the_command_says_when_there_is_no_table(monkeypatch):
    from bgtask.enqueue import legacy_import

    monkeypatch.setattr(legacy_import, "SOURCE_TABLE", "background_task_absent")
    with pytest.raises(CommandError, match="has no background_task_absent table"):
        run()


def test_task_enqueued_is_sent_for_each_copy_after_the_commit():
    from django.db import connection

    from bgtask.signals import task_enqueued

    seen = []

    def receiver(sender, task, **kwargs):
        seen.append(
            (task.args, connection.in_atomic_block, Task.objects.filter(pk=task.pk).exists())
        )

    legacy("sample.record", ["a"])
    legacy("sample.record", ["b"])
    task_enqueued.connect(receiver, weak=False)
    try:
        run()
    finally:
        task_enqueued.disconnect(receiver)
    assert sorted(seen) == [(["a"], False, True), (["b"], False, True)]


@override_settings(BACKGROUND_TASK_PRIORITY_ORDERING="asc")
def test_a_bad_priority_ordering_setting_is_refused_before_any_write():
    from django.core.exceptions import ImproperlyConfigured

    legacy("sample.record", ["a"])
    with pytest.raises(ImproperlyConfigured, match='must be "ASC" or "DESC"'):
        run()
    assert Task.objects.count() == 0
