"""run_after round-trips through bgtask.backends.DatabaseBackend exactly: None stays None, an
aware time comes back as the same instant, a naive time (USE_TZ=False) as the same wall time.

Checked the way Django's tests/tasks and django-tasks-db's backend tests check it: the
TaskResult read back (get_result, refresh) equals the one enqueue returned, field by field."""

import dataclasses
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

pytest.importorskip("django.tasks", reason="Django's Tasks framework needs Django >= 6.0")

from django.tasks.exceptions import InvalidTask
from django.test import override_settings
from django.utils import timezone

from bgtask import run_batch
from bgtask.models import Task
from tests.features import django_tasks

pytestmark = pytest.mark.django_db(transaction=True)


def _read_back(result):
    return django_tasks.add.get_backend().get_result(result.id)


@pytest.mark.parametrize("use_tz", [True, False])
def test_no_run_after_reads_back_as_none(use_tz):
    with override_settings(USE_TZ=use_tz):
        result = django_tasks.add.enqueue(1, 2)
        assert result.task.run_after is None
        fetched = _read_back(result)
        assert fetched.task.run_after is None
        assert fetched == result
        assert fetched.task == result.task
        before = dataclasses.asdict(result)
        result.refresh()
        assert dataclasses.asdict(result) == before
        # The row is still due at once: run_at holds the enqueue time for the claim.
        row = Task.objects.get(pk=int(result.id))
        assert row.run_after is None and row.run_at is not None


def test_an_aware_run_after_reads_back_as_the_same_instant_to_the_microsecond():
    paris = datetime(2031, 6, 30, 14, 30, 15, 123456, tzinfo=ZoneInfo("Europe/Paris"))
    result = django_tasks.add.using(run_after=paris).enqueue(1, 2)
    fetched = _read_back(result)
    assert fetched.task.run_after == paris
    assert fetched.task.run_after.utcoffset() is not None
    assert fetched.task == result.task
    assert Task.objects.get(pk=int(result.id)).run_at == paris


def test_a_naive_run_after_is_refused_when_use_tz_is_on():
    with pytest.raises(InvalidTask, match="run_after must be an aware datetime"):
        django_tasks.add.using(run_after=datetime(2031, 1, 1, 12, 0)).enqueue(1, 2)
    assert Task.objects.count() == 0


def test_a_naive_run_after_reads_back_unchanged_when_use_tz_is_off():
    naive = datetime(2031, 1, 2, 3, 4, 5, 678901)
    with override_settings(USE_TZ=False):
        result = django_tasks.add.using(run_after=naive).enqueue(1, 2)
        fetched = _read_back(result)
        assert fetched.task.run_after == naive
        assert timezone.is_naive(fetched.task.run_after)
        assert fetched.task == result.task


def test_run_after_stays_what_was_given_when_the_row_is_made_due_earlier():
    later = timezone.now() + timedelta(hours=3)
    result = django_tasks.add.using(run_after=later).enqueue(20, 22)
    # The admin's "run now" (or any change of run_at) does not rewrite what was asked for.
    Task.objects.filter(pk=int(result.id)).update(run_at=timezone.now())
    assert run_batch(10).succeeded == 1
    fetched = _read_back(result)
    assert fetched.return_value == 42
    assert fetched.task.run_after == later


def test_plain_bgtask_rows_leave_run_after_empty():
    from tests.sampleapp import tasks

    row = tasks.noop(schedule=60)
    row.refresh_from_db()
    assert row.run_after is None
