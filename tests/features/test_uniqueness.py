"""unique=: at most one pending task per name and arguments, enforced by the unique column."""

import threading

import pytest

from bgtask import run_batch
from bgtask.exceptions import DuplicateTask
from bgtask.models import Task
from bgtask.store import TaskStore
from tests.features import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def test_refuse_raises_with_the_pending_tasks_id_and_writes_nothing():
    first = tasks.record("a", unique="refuse", schedule=3600)
    with pytest.raises(DuplicateTask) as caught:
        tasks.record("a", unique=True)
    assert caught.value.existing_id == first.pk
    assert Task.objects.count() == 1


def test_replace_swaps_a_queued_duplicate_for_the_new_call():
    first = tasks.record("a", unique="replace", schedule=3600)
    second = tasks.record("a", unique="replace", schedule=0, priority=5)
    assert list(Task.objects.values_list("pk", "priority")) == [(second.pk, 5)]
    assert second.pk != first.pk


def test_keyword_order_does_not_matter():
    from tests.sampleapp import tasks as sample

    sample.add(a=1, b=2, unique=True)
    with pytest.raises(DuplicateTask):
        sample.add(b=2, a=1, unique=True)


def test_other_arguments_and_plain_calls_are_not_duplicates():
    tasks.record("a", unique=True)
    tasks.record("b", unique=True)
    tasks.record("a")  # not unique: never refused
    assert Task.objects.count() == 3


def test_the_key_is_freed_when_the_task_finishes():
    tasks.record("a", unique=True)
    assert run_batch(10).succeeded == 1
    assert Task.objects.get().unique_key is None
    tasks.record("a", unique=True)
    assert Task.objects.queued().count() == 1


def test_a_running_duplicate_cannot_be_replaced():
    first = tasks.record("a", unique=True)
    [claimed] = TaskStore().claim_due("w", 1, first.run_at.replace(year=2100))
    assert claimed.pk == first.pk
    for mode in ("refuse", "replace"):
        with pytest.raises(DuplicateTask, match="running"):
            tasks.record("a", unique=mode)


def test_a_decorator_default_applies_and_a_call_may_turn_it_off():
    tasks.with_defaults("k")
    with pytest.raises(DuplicateTask):
        tasks.with_defaults("k")
    tasks.with_defaults("k", unique=False)
    assert Task.objects.count() == 2


def test_bad_unique_values_are_refused():
    with pytest.raises(ValueError, match="unique must be"):
        tasks.record("a", unique="yes")
    assert Task.objects.count() == 0


@pytest.mark.parametrize("mode", ["refuse", "replace"])
def test_concurrent_enqueuers_leave_exactly_one_pending_task(mode):
    """Eight threads, each on its own database connection, enqueue the same call at once."""
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def enqueue() -> None:
        from django.db import connections

        try:
            barrier.wait(10)
            for _ in range(5):
                try:
                    tasks.record("race", unique=mode)
                    outcomes.append("written")
                except DuplicateTask:
                    outcomes.append("duplicate")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=enqueue) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(outcomes) == 40
    assert Task.objects.count() == 1
    if mode == "refuse":
        assert outcomes.count("written") == 1
