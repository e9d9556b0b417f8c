"""repeat= / repeat_until=: the chain of repetitions, and what retries and failures do to it."""

from datetime import datetime, timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from bgtask import run_batch
from bgtask.models import Task
from tests.features import tasks
from tests.sampleapp import tasks as sample

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_constants_are_the_seeds():
    assert (Task.HOURLY, Task.DAILY, Task.WEEKLY) == (3600, 86400, 604800)
    assert (Task.EVERY_2_WEEKS, Task.EVERY_4_WEEKS) == (2 * 604800, 4 * 604800)


def test_a_success_enqueues_the_next_repetition_one_step_after_this_one_was_due():
    first = tasks.record("r", repeat=Task.HOURLY, schedule=0)
    assert first.repeat == Task.HOURLY
    assert run_batch(10).succeeded == 1
    [following] = Task.objects.queued()
    assert following.pk != first.pk
    assert following.run_at == first.run_at + timedelta(hours=1)
    assert (following.args, following.repeat, following.task_name) == (
        ["r"],
        3600,
        "features.record",
    )
    assert Task.objects.get(pk=first.pk).status == Task.SUCCEEDED


@override_settings(MAX_ATTEMPTS=1)
def test_a_failed_repetition_does_not_end_the_chain():
    first = tasks.fail("f", repeat=60, schedule=0)
    assert run_batch(10).failed == 1
    assert Task.objects.get(pk=first.pk).status == Task.FAILED
    [following] = Task.objects.queued()
    assert following.run_at == first.run_at + timedelta(seconds=60)


def test_a_retry_keeps_the_same_row_and_does_not_advance_the_chain():
    first = sample.fail_once("once", repeat=60, schedule=0)
    assert run_batch(10).retried == 1
    assert list(Task.objects.values_list("pk", flat=True)) == [first.pk]


def test_repeat_until_ends_the_chain():
    until = timezone.now() + timedelta(seconds=30)
    tasks.record("u", repeat=60, repeat_until=until, schedule=0)
    assert run_batch(10).succeeded == 1
    assert not Task.objects.queued().exists()


def test_missed_repetitions_are_skipped_not_piled_up():
    now = timezone.now()
    first = tasks.record("late", repeat=Task.HOURLY, schedule=now - timedelta(hours=5, minutes=30))
    run_batch(10)
    [following] = Task.objects.queued()
    assert following.run_at == first.run_at + timedelta(hours=6)
    assert now < following.run_at <= now + timedelta(hours=1)


def test_repeat_options_are_validated_before_anything_is_written():
    with pytest.raises(TypeError, match="repeat must be whole seconds"):
        tasks.record("x", repeat="daily")
    with pytest.raises(ValueError, match="between 0"):
        tasks.record("x", repeat=-1)
    with pytest.raises(ValueError, match="needs repeat="):
        tasks.record("x", repeat_until=timezone.now() + timedelta(days=1))
    with pytest.raises(ValueError, match="before the first run"):
        tasks.record("x", repeat=60, repeat_until=timezone.now() - timedelta(days=1))
    with pytest.raises(TypeError, match="repeat_until must be a datetime"):
        tasks.record("x", repeat=60, repeat_until="tomorrow")
    assert Task.objects.count() == 0


def test_timedelta_and_naive_repeat_until_are_accepted():
    until = datetime.now() + timedelta(days=2)  # naive: read in the current time zone
    task = tasks.record("x", repeat=timedelta(days=1), repeat_until=until)
    assert task.repeat == 86400
    assert timezone.is_aware(Task.objects.get().repeat_until)


@override_settings(MAX_ATTEMPTS=1)
def test_a_repetition_failed_by_losing_its_lease_continues_the_chain_once():
    # A worker died running the last attempt: the rescue fails the row, the chain goes on.
    past = timezone.now() - timedelta(minutes=10)
    dead = Task.objects.create(
        task_name="features.record",
        arguments='{"args":["dead"],"kwargs":{}}',
        status=Task.RUNNING,
        locked_by="dead-worker",
        locked_until=past,
        run_at=past,
        repeat=3600,
    )
    run_batch(5)
    assert Task.objects.get(pk=dead.pk).status == Task.FAILED
    [following] = Task.objects.queued()
    assert following.run_at == past + timedelta(hours=1)
    run_batch(5)
    assert Task.objects.count() == 2
